/**
 * What a generator says while it runs. On stdout, one JSON object per line:
 * `{"step":3,"total":50}`, `{"preview":"/path.png"}`, `{"output":"/path.png"}`.
 * Every other line, stdout or stderr, is the job's log; the last few hundred
 * lines travel with a failure, and an out-of-memory message marks the failure
 * as one (so the scheduler retries on a bigger card).
 */
import type { RenderProgress } from './backend.js';

/** Output lines that mean the GPU ran out of memory (PyTorch's messages and exception name). */
export const OOM_PATTERN = /CUDA out of memory|OutOfMemoryError|CUDA error: out of memory|CUBLAS_STATUS_ALLOC_FAILED/;

/** Bounded ring of log lines. */
export class LogTail {
  private readonly lines: string[] = [];
  constructor(private readonly max: number) {}
  push(line: string): void {
    this.lines.push(line.length > 2_000 ? `${line.slice(0, 2_000)}…` : line);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
  }
  text(): string {
    return this.lines.join('\n');
  }
}

/**
 * Splits a text stream into lines. A carriage return starts the line over
 * (progress bars redraw with \r), and a line with no newline for 64 KiB is
 * cut, so a misbehaving generator cannot grow memory without bound.
 */
export class LineSplitter {
  private partial = '';
  constructor(private readonly onLine: (line: string) => void) {}
  write(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const p of parts) this.emit(p);
    if (this.partial.length > 65_536) {
      this.emit(this.partial);
      this.partial = '';
    }
  }
  end(): void {
    if (this.partial) this.emit(this.partial);
    this.partial = '';
  }
  private emit(raw: string): void {
    const segs = raw.replace(/\r$/, '').split('\r');
    const line = segs.filter((s) => s.length > 0).pop() ?? '';
    if (line.trim()) this.onLine(line);
  }
}

export type ProtocolMessage = { step?: number; total?: number; preview?: string; output?: string };

/** A protocol line, or undefined when the line is log. */
export function parseProtocolLine(line: string): ProtocolMessage | undefined {
  const t = line.trim();
  if (!t.startsWith('{') || !t.endsWith('}')) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const msg: ProtocolMessage = {};
  if (typeof o.step === 'number' && Number.isFinite(o.step)) msg.step = o.step;
  if (typeof o.total === 'number' && Number.isFinite(o.total) && o.total > 0) msg.total = o.total;
  if (typeof o.preview === 'string' && o.preview) msg.preview = o.preview;
  if (typeof o.output === 'string' && o.output) msg.output = o.output;
  return Object.keys(msg).length > 0 ? msg : undefined;
}

/** Reads a running generator's stdout and stderr: progress and previews go on as they come, the rest is kept. */
export class ProtocolReader {
  step = 0;
  total: number;
  /** The output path the generator announced, if any (relative to its working folder). */
  outputPath: string | undefined;
  /** Whether a log line said the GPU ran out of memory. */
  oom = false;
  private readonly log: LogTail;
  private readonly out: LineSplitter;
  private readonly err: LineSplitter;

  constructor(
    defaultTotal: number,
    logLines: number,
    private readonly on: { progress(p: RenderProgress): void; preview(file: string): void },
  ) {
    this.total = defaultTotal;
    this.log = new LogTail(logLines);
    this.out = new LineSplitter((line) => {
      const msg = parseProtocolLine(line);
      if (!msg) return this.logLine(line);
      if (msg.total !== undefined) this.total = msg.total;
      if (msg.step !== undefined) {
        this.step = msg.step;
        this.on.progress({ step: this.step, total: this.total });
      }
      if (msg.preview) this.on.preview(msg.preview);
      if (msg.output) this.outputPath = msg.output;
    });
    this.err = new LineSplitter((line) => this.logLine(line));
  }

  stdout(chunk: string): void {
    this.out.write(chunk);
  }

  stderr(chunk: string): void {
    this.err.write(chunk);
  }

  /** A line of the node's own about this run (timeouts, leftovers), logged with the generator's. */
  note(line: string): void {
    this.log.push(line);
  }

  /** Flushes unterminated last lines once the streams have closed. */
  end(): void {
    this.out.end();
    this.err.end();
  }

  logText(): string {
    return this.log.text();
  }

  private logLine(line: string): void {
    if (OOM_PATTERN.test(line)) this.oom = true;
    this.log.push(line);
  }
}
