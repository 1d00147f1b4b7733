#!/usr/bin/env -S node --max-old-space-size=512
/**
 * The `regmirror` command: one module per command, registered here.
 * The heap limit in the first line is there for memory, not for room: V8 sizes its heap growth by
 * the limit, and with Node's default (a quarter of RAM) a busy mirror's RSS grows by tens of MB
 * more than it needs (docs/performance.md). Live heap under load is 30-50 MB; 512 MB leaves room.
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
