/** The process logger: JSON lines by default, or pino-pretty for a terminal. */
import { pino, type Logger } from 'pino';

/** Options the CLI takes for logging. */
export interface LoggerOptions {
  level: string;
  format: 'json' | 'pretty';
}

/** Creates the root logger. Credentials never reach it: upstream URLs are logged without user-info. */
export function createLogger(options: LoggerOptions): Logger {
  return pino({
    level: options.level,
    base: { pid: process.pid },
    redact: { paths: ['*.authorization', '*.password', '*.token', 'credentials'], censor: '[redacted]' },
    ...(options.format === 'pretty' ? { transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:standard' } } } : {}),
  });
}
