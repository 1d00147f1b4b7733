/** `regmirror serve` and `regmirror verify`: run the mirror, or check a configuration. */
import { Option, type Command } from 'commander';
import { ConfigError, loadConfig, type ConfigOverrides } from '../config/load.js';
import { startMirror, type Mirror } from '../main.js';
import { startupProblems } from '../startup-inputs.js';
import { createLogger } from './logger.js';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Adds `serve` to the program. */
export function registerServe(program: Command): void {
  program
    .command('serve')
    .description('run the mirror (with no --config, the embedded default configuration)')
    .option('-c, --config <file>', 'configuration file (YAML)')
    .option('-l, --listen <address>', 'listen on host:port, or host:port=upstream to pin one (repeatable; replaces listeners)', collect)
    .option('-d, --data <dir>', 'cache folder (storage.path)')
    .option('-u, --upstream <name=url>', 'mirror registry <name> at <url>; user:password@ in the URL are its credentials (repeatable; replaces upstreams)', collect)
    .addOption(new Option('--log-level <level>', 'log level').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .addOption(new Option('--log-format <format>', 'log format').choices(['json', 'pretty']))
    .action(async (opts: ConfigOverrides & { config?: string }) => {
      const config = loadConfig(opts.config, opts);
      const logger = createLogger({ level: config.log.level, format: config.log.format });
      // The same file and flags again; the flags still win over the file. A SIGHUP during the start
      // (whose default action would end the process) waits for it: the file may have changed since.
      let mirror: Mirror | undefined;
      let reloadPending = false;
      const reload = (): void => void mirror?.reload(() => loadConfig(opts.config, opts));
      process.on('SIGHUP', () => (mirror ? reload() : (reloadPending = true)));
      const started = (mirror = await startMirror(config, logger));
      if (reloadPending) reload();
      const stop = (signal: string): void => {
        logger.info({ signal }, 'shutting down');
        void started.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}

/** Adds `verify` to the program. */
export function registerVerify(program: Command): void {
  program
    .command('verify')
    .description('check a configuration file and the credentials and certificate files it names; print problems, one per line')
    .option('-c, --config <file>', 'configuration file (YAML); default: the embedded one')
    .action(async (opts: { config?: string }) => {
      const { problems, warnings } = await startupProblems(loadConfig(opts.config));
      for (const warning of warnings) console.error(`warning: ${warning}`);
      if (problems.length > 0) throw new ConfigError(problems.join('\n'));
      console.log(`${opts.config ?? 'embedded default configuration'}: OK`);
    });
}
