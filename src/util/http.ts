// node:http and node:https, loaded through require(). An ESM `import ... from 'node:http'` builds
// the module's namespace by reading every export, and http.WebSocket, CloseEvent and MessageEvent
// are lazy getters that load Node's bundled undici (with http2, worker_threads and readline): about
// 75 internal modules and 3 MB of RSS in a member that never uses them. require() hands back the
// exports object without reading the getters. Types still come from `import type`.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

export const http = require('node:http') as typeof import('node:http');
export const https = require('node:https') as typeof import('node:https');
