/**
 * `addModel`: hash a local folder or file, upload what the bucket lacks, then
 * write the manifest and point the name at it.
 *
 * Order is what makes it safe and resumable: files first (each with its
 * sha256 in user metadata), the manifest last, so a manifest's presence means
 * the whole model is there. A re-run skips every file already stored with the
 * right size and sha256, so an interrupted add resumes file by file; content
 * whose manifest already exists uploads nothing. The name pointer is written
 * last: re-adding under a name points it at the new hash, and the old hash
 * stays in the bucket for the sweeps that already resolved to it.
 */
import { modelFileKey, modelManifestKey } from '@nightshift/common';
import { getJson, putJson, SHA256_META, statObject, type RegistryStorage } from './bucket.js';
import { sha256File } from '@nightshift/common';
import { listLocalFiles } from './local-files.js';
import { buildManifest, parseManifest, type ModelFile, type ModelKind, type ModelManifest } from './manifest.js';
import { uploadFile } from './multipart.js';
import type { OnProgress } from './progress.js';
import { writeNamePointer } from './names.js';

export interface AddResult {
  manifest: ModelManifest;
  /** Files sent to the bucket this time. */
  uploaded: number;
  /** Files the bucket already held (a resumed or repeated add). */
  skipped: number;
  /** The content was already registered: nothing was uploaded. */
  existed: boolean;
}

export interface AddOptions {
  /** Files above this go up as multipart uploads of this part size (default 64 MiB; S3's minimum is 5 MiB). */
  partSize?: number;
}

export async function addModel(storage: RegistryStorage, name: string, kind: ModelKind, localPath: string, onProgress?: OnProgress, opts: AddOptions = {}): Promise<AddResult> {
  const local = await listLocalFiles(localPath);
  const bytesTotal = local.reduce((n, f) => n + f.size, 0);

  let hashed = 0;
  onProgress?.({ phase: 'hash', bytesDone: 0, bytesTotal });
  const files: ModelFile[] = [];
  for (const f of local) {
    const sha256 = await sha256File(f.abs, (n) => {
      hashed += n;
      onProgress?.({ phase: 'hash', bytesDone: hashed, bytesTotal, file: f.path });
    });
    files.push({ path: f.path, size: f.size, sha256 });
  }
  const fresh = buildManifest(name, kind, files);

  const stored = await getJson(storage, modelManifestKey(fresh.hash));
  if (stored !== undefined) {
    const manifest = parseManifest(stored, fresh.hash);
    await writeNamePointer(storage, name, manifest.hash);
    return { manifest, uploaded: 0, skipped: files.length, existed: true };
  }

  let sent = 0;
  let uploaded = 0;
  let skipped = 0;
  const byPath = new Map(local.map((f) => [f.path, f]));
  onProgress?.({ phase: 'upload', bytesDone: 0, bytesTotal });
  for (const f of fresh.files) {
    const key = modelFileKey(fresh.hash, f.path);
    const have = await statObject(storage, key);
    if (have && have.size === f.size && have.meta[SHA256_META] === f.sha256) {
      skipped++;
      sent += f.size;
      onProgress?.({ phase: 'upload', bytesDone: sent, bytesTotal, file: f.path });
      continue;
    }
    await uploadFile(storage, { key, abs: byPath.get(f.path)!.abs, size: f.size, sha256: f.sha256 }, (n) => {
      sent += n;
      onProgress?.({ phase: 'upload', bytesDone: sent, bytesTotal, file: f.path });
    }, opts.partSize);
    uploaded++;
  }
  await putJson(storage, modelManifestKey(fresh.hash), fresh);
  await writeNamePointer(storage, name, fresh.hash);
  return { manifest: fresh, uploaded, skipped, existed: false };
}
