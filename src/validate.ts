// The integer check every layer needs before a number reaches a syscall, a
// table or a timer: one wording, so any refusal reads the same.

import { invalidArgument } from './errors';

/** Whether `value` is an integer from `min` to `max`, both included. */
export function isIntegerIn(value: unknown, min: number, max: number): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max;
}

/** `value`, if an integer from `min` to `max`; else BATON_INVALID_ARGUMENT naming `name` and the range. */
export function integerIn(value: unknown, name: string, min: number, max: number): number {
  if (!isIntegerIn(value, min, max)) throw invalidArgument(`${name} must be an integer in ${min}..${max}, got ${String(value)}`);
  return value;
}
