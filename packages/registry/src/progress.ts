/** Progress of a model transfer, for bars and the nodes page. */
import { Transform } from 'node:stream';

export interface TransferProgress {
  phase: 'hash' | 'upload' | 'download' | 'verify';
  bytesDone: number;
  bytesTotal: number;
  /** The file being worked on. */
  file?: string;
}

export type OnProgress = (p: TransferProgress) => void;

/** A pass-through that reports every chunk's length (what flows to S3 or to disk). */
export function countingStream(onChunk: (n: number, chunk: Buffer) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      onChunk(chunk.length, chunk);
      done(null, chunk);
    },
  });
}
