/** Entry point: `node --import tsx packages/cli/src/main.ts …` (bin/nightshift.js does the same). */
import { main } from './cli.js';

process.exitCode = await main(process.argv);
