/**
 * The PostgreSQL engine's people beyond keys (store/users.ts on SQLite): who
 * holds an active key, the admins, images submitted for quotas, and who owns
 * a wildcard list (the first writer keeps it). Text sorts in byte order.
 */
import type pg from 'pg';
import type { KeyedUser, UserRow } from '../store/users.js';
import type { PeopleEngine } from './engine-faces.js';
import { userColumns, imagesSubmittedSince } from './postgres-helpers.js';

const U_COLUMNS = userColumns('u');

export class PgPeople implements PeopleEngine {
  constructor(private readonly pool: pg.Pool) {}

  async hasActiveKeys(): Promise<boolean> {
    return (await this.pool.query('SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1')).rows.length > 0;
  }

  async listUsers(): Promise<KeyedUser[]> {
    return (
      await this.pool.query<KeyedUser>(
        `SELECT ${U_COLUMNS}, (SELECT COUNT(*) FROM api_keys k WHERE k.user_name = u.name AND k.revoked_at IS NULL) AS keys
           FROM users u ORDER BY u.created_at, u.name COLLATE "C"`,
      )
    ).rows;
  }

  async activeAdmins(): Promise<string[]> {
    const { rows } = await this.pool.query<{ name: string }>(
      'SELECT DISTINCT u.name COLLATE "C" AS name FROM users u JOIN api_keys k ON k.user_name = u.name AND k.revoked_at IS NULL WHERE u.admin = 1 ORDER BY 1',
    );
    return rows.map((r) => r.name);
  }

  async activeUser(name: string): Promise<UserRow | undefined> {
    return (
      await this.pool.query<UserRow>(`SELECT ${U_COLUMNS} FROM users u WHERE u.name = $1 AND EXISTS (SELECT 1 FROM api_keys k WHERE k.user_name = u.name AND k.revoked_at IS NULL)`, [name])
    ).rows[0];
  }

  async imagesSubmittedSince(owner: string, since: number): Promise<number> {
    return imagesSubmittedSince(this.pool, owner, since);
  }

  async wildcardOwner(name: string): Promise<string | undefined> {
    return (await this.pool.query<{ owner: string }>('SELECT owner FROM wildcard_owners WHERE name = $1', [name])).rows[0]?.owner;
  }

  async setWildcardOwner(name: string, owner: string): Promise<void> {
    await this.pool.query('INSERT INTO wildcard_owners (name, owner) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING', [name, owner]);
  }

  async forgetWildcardOwner(name: string): Promise<void> {
    await this.pool.query('DELETE FROM wildcard_owners WHERE name = $1', [name]);
  }

  async wildcardsOf(owner: string): Promise<string[]> {
    return (await this.pool.query<{ name: string }>('SELECT name FROM wildcard_owners WHERE owner = $1 ORDER BY name COLLATE "C"', [owner])).rows.map((r) => r.name);
  }
}
