/** Route modules under test, mounted behind a fixed caller (what callerAuth sets in http.ts). */
import { Hono } from 'hono';
import { LOCAL_ADMIN, type Caller } from './callers.js';

export function asCaller(routes: Hono, caller: Caller = LOCAL_ADMIN): Hono {
  const app = new Hono();
  app.use('*', async (c, next) => {
    c.set('caller', caller);
    await next();
  });
  app.route('/', routes);
  return app;
}
