#!/usr/bin/env node
// Launcher for the TypeScript sources (no build step): registers tsx, then runs the CLI.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli.ts');
process.exitCode = await main(process.argv);
