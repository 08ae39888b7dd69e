export { main, buildProgram, type Io } from './cli.js';
export { Client, CliError, ApiError, EXIT, parseSseFrame, unreachableError } from './client.js';
export { readSpecFile, checkSpecText, SpecFileError } from './spec-file.js';
export { watchSweep } from './watch.js';
