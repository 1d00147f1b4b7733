#!/usr/bin/env -S node --max-old-space-size=512 --max-semi-space-size=4 --initial-old-space-size=56
/**
 * The `regmirror` command: one module per command, registered here.
 * The V8 heap settings in the first line (docs/performance.md, findings 4 and 5):
 * - the 512 MB limit is there for memory, not for room: V8 sizes its heap growth by the limit, and
 *   with Node's default (a quarter of RAM) a busy mirror's RSS grows by tens of MB more than it needs;
 * - V8 counts every buffer a socket read allocates against the old generation until the next full
 *   collection, and starts one when too little room is left above the live heap (~25 MB): with its
 *   own limits a cold download ran a full collection every ~30 MB received (a third of its CPU).
 *   An old generation of at least 56 MB and a young one of 4 MB semi-spaces leave that room, and
 *   keep peak RSS under the benchmark's 200 MB in every workload (170-180 MB busy).
 */
import { Command } from 'commander';
import { ConfigError } from '../config/load.js';
import { registerClientConfig, registerSetup } from './client-config.js';
import { registerGc } from './gc.js';
import { registerLs } from './ls.js';
import { registerServe, registerVerify } from './serve.js';
import { registerTls } from './tls.js';
import { registerStats } from './stats.js';
import { registerWarm } from './warm.js';

const program = new Command('regmirror')
  .description('A pull-through cache for many container registries in one process')
  .showHelpAfterError();

registerServe(program);
registerVerify(program);
registerTls(program);
registerStats(program);
registerClientConfig(program);
registerSetup(program);
registerGc(program);
registerWarm(program);
registerLs(program);

program.parseAsync().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    console.error(err.message);
    process.exit(2);
  }
  const e = err as NodeJS.ErrnoException;
  if (e.code === 'EADDRINUSE' || e.code === 'EACCES') {
    console.error(`regmirror: cannot listen: ${e.message}`);
    process.exit(1);
  }
  console.error(err);
  process.exit(1);
});
