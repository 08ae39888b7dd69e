/** Structured JSON logs (pino) with the service name and secrets redacted. */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(service: string, level = process.env.NIGHTSHIFT_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name: service,
    level,
    redact: { paths: ['token', '*.token', 'authorization', '*.authorization', 'secretKey', '*.secretKey'], censor: '[redacted]' },
  });
}
