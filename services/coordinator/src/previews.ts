/**
 * Stores each running job's newest preview as previews/{jobId}.webp. Uploads
 * are throttled per job: at most one in flight, and a newer preview replaces
 * one still waiting (newest wins), so a fast backend cannot flood S3.
 */
import { previewKey, type Logger, type Storage } from '@nightshift/common';

export class PreviewStore {
  private readonly waiting = new Map<string, Buffer>();
  private readonly inFlight = new Set<string>();

  constructor(
    private readonly storage: Pick<Storage, 'put'>,
    private readonly log: Logger,
  ) {}

  offer(jobId: string, webp: Buffer): void {
    this.waiting.set(jobId, webp);
    if (!this.inFlight.has(jobId)) void this.drain(jobId);
  }

  private async drain(jobId: string): Promise<void> {
    this.inFlight.add(jobId);
    try {
      for (let next = this.waiting.get(jobId); next; next = this.waiting.get(jobId)) {
        this.waiting.delete(jobId);
        try {
          await this.storage.put(previewKey(jobId), next, 'image/webp');
        } catch (err) {
          this.log.debug({ job: jobId, err: String(err) }, 'preview upload failed (previews are best effort)');
        }
      }
    } finally {
      this.inFlight.delete(jobId);
    }
  }
}
