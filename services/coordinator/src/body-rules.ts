/** What the HTTP routes ask of a request body: its size limit and its media type, said one way everywhere. */
import { bodyLimit } from 'hono/body-limit';

/** A body limit answering 413 with the limit named. */
export const tooLarge = (maxSize: number, label: string) =>
  bodyLimit({ maxSize, onError: (c) => c.json({ error: `request body too large (limit ${label})`, details: [] }, 413) });

/** The media type of a Content-Type header value, lower-case, without parameters ('' when absent). */
export const mediaType = (header: string | undefined) => (header ?? '').split(';')[0]!.trim().toLowerCase();
