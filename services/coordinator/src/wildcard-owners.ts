/**
 * Who may use a wildcard list (issue 16). Lists live in the bucket, their
 * owners in SQLite (`wildcard_owners`); a list written before users existed
 * has no row and is the local user's. A user reads, writes, deletes and
 * expands only their own lists (admins: all); another's is as absent as a
 * missing one, in the routes and in a spec's `__name__`.
 */
import type { PeopleEngine } from './store-engine/engine.js';
import { LOCAL_USER, mayUse, type Caller } from './callers.js';

export type WildcardOwnerEngine = { people: Pick<PeopleEngine, 'wildcardOwner' | 'setWildcardOwner' | 'forgetWildcardOwner'> };
type OwnerReader = { people: Pick<PeopleEngine, 'wildcardOwner'> };

export const wildcardOwnerOf = async (engine: OwnerReader, name: string): Promise<string> => (await engine.people.wildcardOwner(name)) ?? LOCAL_USER;

/** The test a spec's list references pass for `caller` (specWildcards' `may`). */
export const mayUseWildcard =
  (engine: OwnerReader, caller: Caller) =>
  async (name: string): Promise<boolean> =>
    mayUse(caller, await wildcardOwnerOf(engine, name));
