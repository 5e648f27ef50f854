// The settings of the application's side (issue 15): leader lease drift, app health, watches.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSettings, SettingsError, type Env } from '../../src/config/settings.ts';

const TOKEN = 'a-token-of-enough-length';
const host = { hostname: () => 'test-host', readFile: () => '', cwd: () => '/srv' };
const parse = (argv: string[], env: Env) => parseSettings(argv, { RAFTLET_CLUSTER_TOKEN: TOKEN, ...env }, host);

describe('settings: leader lease, application health, watches', () => {
  it('reads each from a variable or a flag', () => {
    const s = parse(['--app-health-threshold', '3', '--watch-max-buffered=50'], {
      RAFTLET_LEASE_DRIFT_RATIO: '0.25',
      RAFTLET_APP_HEALTH_URL: 'http://127.0.0.1:8080/healthz?full=1',
      RAFTLET_APP_HEALTH_INTERVAL_MS: '200',
      RAFTLET_WATCH_HISTORY: '500',
      RAFTLET_WATCH_MAX_WATCHERS: '7',
    });
    assert.equal(s.leaseDriftRatio, 0.25);
    assert.equal(s.appHealthUrl, 'http://127.0.0.1:8080/healthz?full=1');
    assert.equal(s.appHealthIntervalMs, 200);
    assert.equal(s.appHealthThreshold, 3);
    assert.equal(s.watchHistory, 500);
    assert.equal(s.watchMaxWatchers, 7);
    assert.equal(s.watchMaxBuffered, 50);
  });

  it('refuses bad values with one line naming the setting', () => {
    const cases: [Env, RegExp][] = [
      [{ RAFTLET_LEASE_DRIFT_RATIO: '0.95' }, /^RAFTLET_LEASE_DRIFT_RATIO must be between 0 and 0.9/],
      [{ RAFTLET_LEASE_DRIFT_RATIO: '-0.1' }, /^RAFTLET_LEASE_DRIFT_RATIO must be a decimal number/],
      [{ RAFTLET_LEASE_DRIFT_RATIO: '1e-3' }, /^RAFTLET_LEASE_DRIFT_RATIO must be a decimal number/],
      [{ RAFTLET_APP_HEALTH_URL: 'localhost:8080/healthz' }, /^RAFTLET_APP_HEALTH_URL must be an http:\/\/ or https:\/\/ URL/],
      [{ RAFTLET_APP_HEALTH_URL: 'not a url' }, /^RAFTLET_APP_HEALTH_URL must be a URL/],
      [{ RAFTLET_APP_HEALTH_INTERVAL_MS: '10' }, /^RAFTLET_APP_HEALTH_INTERVAL_MS must be between 50 and/],
      [{ RAFTLET_APP_HEALTH_THRESHOLD: '0' }, /^RAFTLET_APP_HEALTH_THRESHOLD must be between 1 and 100/],
      [{ RAFTLET_WATCH_MAX_WATCHERS: 'many' }, /^RAFTLET_WATCH_MAX_WATCHERS must be a whole number/],
    ];
    for (const [env, message] of cases) {
      assert.throws(() => parse([], env), (error: unknown) => error instanceof SettingsError && message.test(error.message) && !error.message.includes('\n'), JSON.stringify(env));
    }
  });

  it('warns that the health interval and threshold do nothing without the URL', () => {
    const s = parse([], { RAFTLET_APP_HEALTH_THRESHOLD: '3' });
    assert.ok(s.warnings.includes('RAFTLET_APP_HEALTH_THRESHOLD is ignored: RAFTLET_APP_HEALTH_URL is not set'), s.warnings.join('; '));
  });
});
