// The `raftlet` command: dispatches to run / local / the client / demo-app. Each command's modules
// (the node runtime, express, the Kubernetes client; local's process launcher) are imported only by
// the command that needs them, so `raftlet --help` and a bad setting answer at once and `run` does
// not carry the others in memory.
import { readFileSync } from 'node:fs';
import { SettingsError, parseSettings, settingsHelp } from '../config/settings.ts';
import type { Env, Settings } from '../config/settings.ts';
import { ExitCode } from '../run/exit-codes.ts';
import type { Output } from './local.ts';

export interface CliIo {
  readonly stdout: Output;
  readonly stderr: Output;
  readonly env: Env;
}

const processIo = (): CliIo => ({ stdout: process.stdout, stderr: process.stderr, env: process.env });


export function usage(): string {
  return [
    'raftlet: a Raft sidecar for Kubernetes StatefulSets (leader election, a replicated key-value store,',
    'a leader pod label, Prometheus metrics)',
    '',
    'Usage:',
    '  raftlet run [flags]                  run one node; every setting below is a flag or a variable',
    '  raftlet local [--nodes N] [--base-port P] [--data-dir DIR]',
    '                                       N nodes on 127.0.0.1 with a live status table (raftlet local --help)',
    '  raftlet status [--api URL]           the status of the node at URL',
    '  raftlet get KEY [--api URL]          print the value of KEY',
    '  raftlet put KEY VALUE [--api URL]    set KEY to VALUE',
    '  raftlet del KEY [--api URL]          delete KEY',
    '  raftlet snapshot save FILE [--api URL | --peer URL]',
    '                                       a consistent snapshot of a running cluster (index, term, checksum)',
    '  raftlet snapshot restore FILE [--data-dir DIR] [--node-id ID] [--peers id=url,...] [--cluster-id ID]',
    '                                       a data directory that starts a new cluster with that state',
    '                                       (raftlet snapshot --help)',
    '  raftlet demo-app [--port N]          the stand-in application container (raftlet demo-app --help)',
    '  raftlet help | --help | --version',
    '',
    'Exit codes: 0 clean stop; 2 bad configuration (one line naming the setting); 3 data directory',
    'unusable or corrupt.',
    '',
    'Settings of raftlet run (a flag wins over its variable; an empty value counts as unset):',
    ...settingsHelp(),
    '',
  ].join('\n');
}

export function version(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  const v = typeof pkg === 'object' && pkg !== null ? (pkg as Record<string, unknown>).version : undefined;
  return typeof v === 'string' ? v : 'unknown';
}

const wantsHelp = (args: readonly string[]): boolean => args.includes('--help') || args.includes('-h');

/** Runs one command line (without node and the script) and resolves with the process exit code. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.stdout.write(usage());
      return ExitCode.ok;
    case '--version':
    case 'version':
      io.stdout.write(`raftlet ${version()}\n`);
      return ExitCode.ok;
    case 'run': {
      if (wantsHelp(rest)) {
        io.stdout.write(usage());
        return ExitCode.ok;
      }
      let settings: Settings;
      try {
        settings = parseSettings(rest, io.env);
      } catch (err) {
        if (!(err instanceof SettingsError)) throw err;
        io.stderr.write(`raftlet: ${err.message}\n`);
        return ExitCode.badConfig;
      }
      const { runNode } = await import('../run/index.ts');
      return runNode(settings);
    }
    case 'local': {
      const { localUsage, runLocal } = await import('./local.ts');
      if (wantsHelp(rest)) {
        io.stdout.write(localUsage());
        return ExitCode.ok;
      }
      return runLocal(rest, { stdout: io.stdout, stderr: io.stderr, env: io.env });
    }
    case 'status':
    case 'get':
    case 'put':
    case 'del': {
      const { runClientCommand } = await import('../api/client-cli.ts');
      return runClientCommand(argv, { stdout: io.stdout, stderr: io.stderr, env: io.env });
    }
    case 'snapshot': {
      const { runSnapshotCommand } = await import('./snapshot.ts');
      return runSnapshotCommand(rest, { stdout: io.stdout, stderr: io.stderr, env: io.env });
    }
    case 'demo-app': {
      const { runDemoApp } = await import('./demo-app.ts');
      return runDemoApp(rest);
    }
    default:
      io.stderr.write(`raftlet: unknown command ${JSON.stringify(command)}; commands: run, local, status, get, put, del, snapshot, demo-app, help\n`);
      return ExitCode.badConfig;
  }
}
