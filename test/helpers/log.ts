/** A log that keeps what it is given (the control socket's `ControlLog`), for tests to read back. */
export interface Logged {
  readonly level: 'info' | 'error' | 'debug';
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

/** `level: 'debug'` also keeps the access log's lines (debug), as a logger at that level would. */
export function collectingLog(level: 'info' | 'debug' = 'info'): {
  logged: Logged[];
  level: string;
  info(fields: object, message: string): void;
  error(fields: object, message: string): void;
  debug(fields: object, message: string): void;
} {
  const logged: Logged[] = [];
  return {
    logged,
    level,
    info: (fields, message) => void logged.push({ level: 'info', fields: { ...fields }, message }),
    error: (fields, message) => void logged.push({ level: 'error', fields: { ...fields }, message }),
    debug: (fields, message) => {
      if (level === 'debug') logged.push({ level: 'debug', fields: { ...fields }, message });
    },
  };
}
