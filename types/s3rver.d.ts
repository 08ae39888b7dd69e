// s3rver ships no types; this is the part of its API the dev farm uses.
declare module 's3rver' {
  interface S3rverOptions {
    address?: string;
    port?: number;
    directory?: string;
    silent?: boolean;
    vhostBuckets?: boolean;
    resetOnClose?: boolean;
    configureBuckets?: { name: string; configs?: (string | Buffer)[] }[];
  }
  export default class S3rver {
    constructor(opts: S3rverOptions);
    run(): Promise<unknown>;
    /** Koa's middleware chain (s3rver is a Koa app), read when it starts listening; the first entry runs first. */
    /** `body` and `length` are Koa's response body (a stream for an object GET) and Content-Length. */
    middleware: ((ctx: { method: string; path: string; status: number; body: unknown; length: number | undefined }, next: () => Promise<void>) => Promise<void>)[];
    close(): Promise<void>;
  }
}
