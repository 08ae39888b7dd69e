/** Argument parsers shared by the commands; their messages are part of the usage errors. */
import { InvalidArgumentError } from 'commander';

/** An integer argument from `min` to `max`, named `what` in the error. */
export const int = (what: string, min: number, max: number) => (v: string) => {
  if (!/^-?\d+$/.test(v)) throw new InvalidArgumentError(`${what} must be an integer`);
  const n = Number(v);
  if (n < min || n > max) throw new InvalidArgumentError(`${what} must be from ${min} to ${max}`);
  return n;
};
