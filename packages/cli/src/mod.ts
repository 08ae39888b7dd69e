export { main, buildProgram, type Io } from './cli.js';
export { Client, CliError, ApiError, EXIT, parseSseFrame, unreachableError } from './client.js';
export { readSpecFile, checkSpecText, formatProblems, SpecFileError } from './spec-file.js';
export { getSweep, watchSweep, type WatchOptions } from './watch.js';
export { finalReport, sweepLine, type SweepView } from './format.js';
export { postSweep } from './commands/submit.js';
export type { SearchResult } from './commands/images.js';
