/** Preview files a generator announces, passed on to the worker as small WebPs. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { sleep } from '@nightshift/common';
import { insideJobFolder, type JobFolder } from './exec-outputs.js';

/**
 * Turns announced preview files into small WebPs for the worker. One
 * conversion at a time, at most one per interval; while one runs, only the
 * newest announced file is remembered (newest wins, older ones are skipped).
 */
export class PreviewPump {
  private pending: string | undefined;
  private running: Promise<void> | undefined;
  private last = 0;
  private stopped = false;
  /** The first announced preview that lay outside the job folder (the job fails for it). */
  escaped: string | undefined;

  constructor(
    private readonly cwd: string,
    private readonly folder: JobFolder,
    private readonly maxSide: number,
    private readonly intervalMs: number,
    private readonly emit: (preview: Buffer) => void,
  ) {}

  offer(file: string): void {
    if (this.stopped) return;
    this.pending = path.resolve(this.cwd, file);
    this.running ??= this.pump();
  }

  private async pump(): Promise<void> {
    try {
      while (this.pending && !this.stopped) {
        const wait = this.last + this.intervalMs - Date.now();
        if (wait > 0) await sleep(wait);
        const file = this.pending;
        this.pending = undefined;
        if (!file) break;
        this.last = Date.now();
        const inside = await insideJobFolder(this.folder, file);
        if (inside === false) {
          this.escaped ??= file;
          this.stopped = true;
          break;
        }
        try {
          const webp = await sharp(await readFile(file))
            .resize(this.maxSide, this.maxSide, { fit: 'inside', withoutEnlargement: true })
            .webp({ quality: 60, effort: 1 })
            .toBuffer();
          this.emit(webp);
        } catch {
          // A half-written or vanished preview is skipped; the next one will do.
        }
      }
    } finally {
      this.running = undefined;
    }
  }

  /** Stops taking previews and waits for the conversion in flight, if any, to be passed on (the job folder is about to go). */
  async drain(): Promise<void> {
    this.stopped = true;
    this.pending = undefined;
    await this.running;
  }
}
