/**
 * The log sink: one line per event on stderr (stdout stays for command
 * output such as `memtide sample --format json`). Text for people, JSON lines
 * for log shippers.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

export interface LoggerConfig {
  level: LogLevel;
  format: 'text' | 'json';
}

export function createLogger(config: () => LoggerConfig, write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  const log = (level: Exclude<LogLevel, 'silent'>, message: string, fields?: Record<string, unknown>) => {
    const { level: threshold, format } = config();
    if (RANK[level] < RANK[threshold]) return;
    const time = new Date().toISOString();
    if (format === 'json') {
      write(`${JSON.stringify({ time, level, msg: message, ...fields })}\n`);
      return;
    }
    const extra = fields && Object.keys(fields).length ? ` ${JSON.stringify(fields)}` : '';
    write(`${time} ${level.padEnd(5)} ${message}${extra}\n`);
  };
  return {
    debug: (m, f) => log('debug', m, f),
    info: (m, f) => log('info', m, f),
    warn: (m, f) => log('warn', m, f),
    error: (m, f) => log('error', m, f),
  };
}

/** A logger that drops everything (embedding API default). */
export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };
