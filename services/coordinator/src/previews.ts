/**
 * Stores each running job's newest preview as previews/{jobId}.webp. Uploads
 * are throttled per job: at most one in flight, and a newer preview replaces
 * one still waiting (newest wins), so a fast backend cannot flood S3.
 */
import { previewKey, type Logger, type Storage } from '@nightshift/common';

/**
 * The largest preview kept or shown to live clients. Nodes drop bigger ones
 * before sending (gpu-node worker.ts keeps the same bound); a node that does
 * not is ignored, so one cannot fill S3 or every dashboard's memory.
 */
export const MAX_PREVIEW_BYTES = 256 * 1024;

export class PreviewStore {
  private readonly waiting = new Map<string, Buffer>();
  private readonly inFlight = new Set<string>();

  constructor(
    private readonly storage: Pick<Storage, 'put'>,
    private readonly log: Logger,
  ) {}

  /** Queues a preview for upload; false (and nothing stored) when it is over MAX_PREVIEW_BYTES. */
  offer(jobId: string, webp: Buffer): boolean {
    if (webp.length > MAX_PREVIEW_BYTES) return false;
    this.waiting.set(jobId, webp);
    if (!this.inFlight.has(jobId)) void this.drain(jobId);
    return true;
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
