/**
 * Names and branded primitives. Types and event types are lowercase `[a-z0-9_-]{1,64}`; aggregate ids
 * are 1-128 printable characters without control or invisible characters, '/' (the separator of
 * `type/id` keys), or spaces at either end, and not '.' or '..'; field names follow the same rule,
 * '/', '.' and '..' allowed, and are not `__proto__`. New ids and field names are in Unicode NFC.
 */
import { type EventRef, INVISIBLE, err } from './errors.js';

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

export type AggregateType = Brand<string, 'AggregateType'>;
export type AggregateId = Brand<string, 'AggregateId'>;
export type EventType = Brand<string, 'EventType'>;
/** 1-based version of an event within its aggregate. */
export type Version = Brand<number, 'Version'>;
/** 1-based, gap-free, store-wide position of an event. */
export type Position = Brand<number, 'Position'>;

const NAME = /^[a-z0-9_-]{1,64}$/;
/** The largest whole number a count, version, position or threshold takes: 2^53−1, exact in JavaScript. */
export const MAX_WHOLE = Number.MAX_SAFE_INTEGER;
// Control characters (C0, DEL, C1), the key separator, and lone surrogates (not valid UTF-8 / JSON text).
const BAD_ID_CHAR =
  /[\u0000-\u001f\u007f-\u009f/]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const BAD_TEXT_CHAR =
  /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** More than `max` code points (the spread only runs for strings that might be). */
const longerThan = (value: string, max: number): boolean => value.length > max && [...value].length > max;

export function aggregateType(value: unknown): AggregateType {
  if (typeof value !== 'string' || !NAME.test(value)) throw err('EDBX_ERR_INVALID_AGGREGATE_TYPE', { value });
  return value as AggregateType;
}

export function aggregateId(value: unknown): AggregateId {
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    longerThan(value, 128) ||
    BAD_ID_CHAR.test(value) ||
    INVISIBLE.test(value) ||
    value.trim() !== value ||
    // '.' and '..' are path steps in every URL: no HTTP client could address them.
    value === '.' ||
    value === '..'
  ) {
    throw err('EDBX_ERR_INVALID_AGGREGATE_ID', { value });
  }
  return value as AggregateId;
}

/**
 * The id of an aggregate being created (by its first event) or named by a new token scope: an aggregate
 * id, in Unicode NFC (see `notNfc`). Ids stored before the rule are read and appended to as they are.
 *
 * @example
 * newAggregateId('josé'); // 'josé' (é as U+00E9)
 * newAggregateId('jose\u0301'); // throws EDBX_ERR_INVALID_AGGREGATE_ID: … not in Unicode NFC …
 */
export function newAggregateId(value: unknown): AggregateId {
  const id = aggregateId(value);
  const reason = notNfc(id, 'id');
  if (reason !== undefined) throw err('EDBX_ERR_INVALID_AGGREGATE_ID', { value, reason });
  return id;
}

/**
 * The event `index` of a transaction as an error names it (see EventRef): by its aggregate too when
 * both names are valid (an invalid one is quoted by the error itself, escaped).
 *
 * @example
 * eventRef(1, { aggregate_type: 'patient', aggregate_id: 'p-031' }); // { index: 1, aggregate_type: 'patient', aggregate_id: 'p-031' }
 */
export function eventRef(
  index: number,
  event: { readonly aggregate_type?: unknown; readonly aggregate_id?: unknown } | undefined,
): EventRef {
  try {
    return {
      index,
      aggregate_type: aggregateType(event?.aggregate_type),
      aggregate_id: aggregateId(event?.aggregate_id),
    };
  } catch {
    return { index };
  }
}

export function eventType(value: unknown): EventType {
  if (typeof value !== 'string' || !NAME.test(value)) throw err('EDBX_ERR_INVALID_EVENT_TYPE', { value });
  return value as EventType;
}

/**
 * Field names follow the rule of new ids: 1-128 visible characters, without control or invisible
 * characters (zero-width, bidi controls, fillers) or spaces at either end, in Unicode NFC, so that two
 * names that look the same are the same name (`ssn\u200b` cannot pass for a locked `ssn`, nor
 * `diagno\u0301stico` for a locked `diagnóstico`); and not `__proto__`. For new writes: names already
 * stored are read as they are.
 *
 * @example
 * fieldName('ssn'); // 'ssn'
 * fieldName('ssn '); // throws EDBX_ERR_INVALID_FIELD_NAME: … starts or ends with a space …
 */
export function fieldName(value: string): string {
  const reason = fieldNameFault(value);
  if (reason !== undefined) throw err('EDBX_ERR_INVALID_FIELD_NAME', { value, reason });
  return value;
}

/** ASCII names without a space at either end: every usual field name, checked with one test. */
const PLAIN_FIELD = /^[\x21-\x7e](?:[\x20-\x7e]{0,126}[\x21-\x7e])?$/;

const codePoint = (c: string): string => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;

/** What is wrong with a field name, as what to fix; undefined when it is a valid one. */
function fieldNameFault(value: string): string | undefined {
  if (PLAIN_FIELD.test(value))
    return value === '__proto__' ? 'this name is not allowed: rename the field' : undefined;
  if (value.length === 0) return 'a field name cannot be empty: use 1-128 visible characters';
  if (longerThan(value, 128)) return 'it is longer than 128 characters: use a shorter name';
  const bad = BAD_TEXT_CHAR.exec(value)?.[0];
  if (bad !== undefined)
    return /[\ud800-\udfff]/.test(bad)
      ? 'it holds a lone surrogate (not text): send the name as well-formed UTF-8'
      : `it holds the control character ${codePoint(bad)}: remove it`;
  const unseen = INVISIBLE.exec(value)?.[0];
  if (unseen !== undefined)
    return `it holds the invisible character ${codePoint(unseen)}, which would make it look like another name: remove it`;
  if (value.trim() !== value) return 'it starts or ends with a space: remove the spaces';
  return notNfc(value, 'name');
}

const NON_ASCII = /[^\x00-\x7f]/;
const codePoints = (text: string): string => [...text].map(codePoint).join(' ');

/**
 * Why a name is not in Unicode NFC, naming its first character written otherwise; undefined when it
 * is. Canonically equivalent spellings (`ó` as U+00F3, or `o` + U+0301) print alike, so only the NFC
 * one is taken. The name is refused, never normalised: nothing is coerced silently, and a payload's
 * keys are part of its event's hash.
 */
export function notNfc(value: string, what: 'name' | 'id'): string | undefined {
  if (!NON_ASCII.test(value) || value.normalize('NFC') === value) return undefined;
  let example = '';
  for (const { segment } of new Intl.Segmenter('en', { granularity: 'grapheme' }).segment(value)) {
    const nfc = segment.normalize('NFC');
    if (nfc !== segment) {
      example = ` (${codePoints(segment)} is ${codePoints(nfc)} in NFC)`;
      break;
    }
  }
  return `it is not in Unicode NFC${example}, so it would be another ${what} that looks the same as its NFC spelling: send the ${what} in NFC`;
}

/** A comment recorded with an administrative action: up to 1000 characters of well-formed text. */
export function comment(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (longerThan(value, 1000) || !isWellFormedText(value)) {
    throw err('EDBX_ERR_INVALID_ARGUMENT', {
      name: 'comment',
      value,
      reason: 'use at most 1000 characters of text (no NUL)',
    });
  }
  return value;
}

/** True when the string has no lone surrogate and no NUL (both break canonical JSON or key encoding). */
export function isWellFormedText(value: string): boolean {
  return value.isWellFormed() && !value.includes('\u0000');
}

export function eventId(value: unknown): string {
  if (
    typeof value !== 'string' ||
    value.length === 0 ||
    longerThan(value, 128) ||
    BAD_TEXT_CHAR.test(value)
  ) {
    throw err('EDBX_ERR_INVALID_EVENT_ID', { value });
  }
  return value;
}

/** Parse a version: a whole number from 1 to MAX_WHOLE given as a number or a decimal string. */
export function version(value: unknown): Version {
  const n = wholeNumber(value);
  if (n === undefined || n < 1) throw err('EDBX_ERR_INVALID_VERSION', { value });
  return n as Version;
}

export function expectedVersion(value: unknown): number {
  const n = wholeNumber(value);
  if (n === undefined) throw err('EDBX_ERR_INVALID_EXPECTED_VERSION', { value });
  return n;
}

/** A whole number >= 0 from a number or a plain decimal string (no signs, exponents or spaces). */
export function wholeNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value === 'string' && /^[0-9]{1,16}$/.test(value)) {
    const n = Number(value);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  return undefined;
}

/** `type/id` display key of an aggregate. */
export const aggregateKey = (type: string, id: string): string => `${type}/${id}`;
