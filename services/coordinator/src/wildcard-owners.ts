/**
 * Who may use a wildcard list (issue 16). Lists live in the bucket, their
 * owners in SQLite (`wildcard_owners`); a list written before users existed
 * has no row and is the local user's. A user reads, writes, deletes and
 * expands only their own lists (admins: all); another's is as absent as a
 * missing one, in the routes and in a spec's `__name__`.
 */
import type { Store } from './store.js';
import { LOCAL_USER, mayUse, type Caller } from './callers.js';

export type WildcardOwnerStore = Pick<Store, 'wildcardOwner' | 'setWildcardOwner' | 'forgetWildcardOwner'>;

export const wildcardOwnerOf = (store: Pick<Store, 'wildcardOwner'>, name: string): string => store.wildcardOwner(name) ?? LOCAL_USER;

/** The test a spec's list references pass for `caller` (specWildcards' `may`). */
export const mayUseWildcard =
  (store: Pick<Store, 'wildcardOwner'>, caller: Caller) =>
  (name: string): boolean =>
    mayUse(caller, wildcardOwnerOf(store, name));
