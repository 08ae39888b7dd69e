/**
 * Settings are NIGHTSHIFT_* keys from the environment, optionally overlaid on
 * a JSON or YAML file named by NIGHTSHIFT_CONFIG with the same keys. The
 * environment wins over the file so one machine can override a shared file;
 * an empty variable counts as unset. Each schema (loadConfig, a service's own
 * options) picks the keys it knows.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { formatIssues } from './zod-issues.js';

/** The file's keys, then the environment's NIGHTSHIFT_* variables over them. */
export function settingsInput(env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  const merged: Record<string, unknown> = { ...readSettingsFile(env.NIGHTSHIFT_CONFIG) };
  for (const [k, v] of Object.entries(env)) if (k.startsWith('NIGHTSHIFT_') && v !== undefined && v !== '') merged[k] = v;
  return merged;
}

/** A settings file (.json, else YAML); no file: no settings. */
export function readSettingsFile(file: string | undefined): Record<string, unknown> {
  if (!file) return {};
  const text = readFileSync(file, 'utf8');
  return (file.endsWith('.json') ? JSON.parse(text) : parseYaml(text)) as Record<string, unknown>;
}

/** Validates settings, naming every bad field; `what` starts the error ("configuration"). */
export function parseSettings<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw new Error(`invalid ${what}: ${formatIssues(result.error.issues)}`);
  return result.data;
}
