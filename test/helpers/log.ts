/** A log that keeps what it is given (the control socket's `ControlLog`), for tests to read back. */
export interface Logged {
  readonly level: 'info' | 'error';
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

export function collectingLog(): {
  logged: Logged[];
  info(fields: object, message: string): void;
  error(fields: object, message: string): void;
} {
  const logged: Logged[] = [];
  return {
    logged,
    info: (fields, message) => void logged.push({ level: 'info', fields: { ...fields }, message }),
    error: (fields, message) => void logged.push({ level: 'error', fields: { ...fields }, message }),
  };
}
