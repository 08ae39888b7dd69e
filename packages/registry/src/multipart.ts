/**
 * Uploads one local file: a single PUT up to the part size, a multipart
 * upload above it. minio's own putObject would do the multipart itself, but
 * it first lists the bucket's incomplete uploads (to resume one), which
 * s3rver, the local farm's S3, refuses as NotImplemented; so the parts are
 * sent here with minio's initiate / uploadPart / complete calls, which every
 * S3 has. A failed multipart upload is aborted (no orphaned parts); an add
 * run again resumes file by file (add-model.ts), not part by part.
 */
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { USER_META_PREFIX } from '@nightshift/common';
import { putStream, SHA256_META, type RegistryStorage } from './bucket.js';
import { countingStream } from './progress.js';

/** minio's default part size: 10,000 parts reach 640 GB. */
export const DEFAULT_PART_SIZE = 64 * 1024 * 1024;

export interface UploadFile {
  key: string;
  abs: string;
  size: number;
  sha256: string;
}

export async function uploadFile(s: RegistryStorage, f: UploadFile, onBytes: (n: number) => void, partSize = DEFAULT_PART_SIZE): Promise<void> {
  if (f.size <= partSize) {
    const source = createReadStream(f.abs, { highWaterMark: 1 << 20 });
    const counter = countingStream((n) => onBytes(n));
    try {
      // The pipeline carries read errors to the upload; the upload reads the counter.
      await Promise.all([pipeline(source, counter), putStream(s, f.key, counter, f.size, f.sha256)]);
    } catch (err) {
      source.destroy();
      counter.destroy();
      throw err;
    }
    return;
  }
  const headers = { 'Content-Type': 'application/octet-stream', [`${USER_META_PREFIX}${SHA256_META}`]: f.sha256 };
  const uploadId = await s.client.initiateNewMultipartUpload(s.bucket, f.key, headers);
  const file = await open(f.abs, 'r');
  try {
    const buf = Buffer.alloc(partSize);
    const etags: { part: number; etag: string }[] = [];
    for (let offset = 0, part = 1; offset < f.size; offset += partSize, part++) {
      const want = Math.min(partSize, f.size - offset);
      const { bytesRead } = await file.read(buf, 0, want, offset);
      if (bytesRead !== want) throw new Error(`${f.abs} changed while it was uploaded (short read at ${offset})`);
      const body = buf.subarray(0, want);
      const { etag } = await s.client.uploadPart({ bucketName: s.bucket, objectName: f.key, uploadID: uploadId, partNumber: part, headers: { 'Content-Length': want } }, body);
      etags.push({ part, etag });
      onBytes(want);
    }
    await s.client.completeMultipartUpload(s.bucket, f.key, uploadId, etags);
  } catch (err) {
    await s.client.abortMultipartUpload(s.bucket, f.key, uploadId).catch(() => undefined);
    throw err;
  } finally {
    await file.close();
  }
}
