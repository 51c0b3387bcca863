/**
 * Column naming shared by the table-shaped sinks (PostgreSQL, SQLite, CSV): the fixed row columns, and
 * the column a payload field lands in. Identifiers are at most 63 bytes (PostgreSQL truncates longer
 * ones silently, which could merge two fields): longer names are cut and suffixed with a hash.
 */
import { createHash } from 'node:crypto';
import type { EventIssuer } from '../core/event.js';

/** The fixed columns of every mirrored table, before the field columns. */
export const ROW_COLUMNS = ['id', 'version', 'created_at', 'created_by', 'updated_at', 'updated_by'] as const;

export const MAX_IDENT_BYTES = 63;

const hash8 = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 8);

/** `name` if it fits in 63 bytes, else its longest prefix of whole characters that fits with `_<hash8>`. */
export function fitIdent(name: string): string {
  if (Buffer.byteLength(name) <= MAX_IDENT_BYTES) return name;
  let out = '';
  for (const ch of name) {
    if (Buffer.byteLength(out + ch) > MAX_IDENT_BYTES - 9) break;
    out += ch;
  }
  return `${out}_${hash8(name)}`;
}

/**
 * The column of a field. A field named like a fixed column (any case) is stored as `field_<name>`
 * (`id` → `field_id`). So that no other field lands there, a field whose name is such a name behind
 * one or more `field_` (`field_id`, `Field_field_version`) gets one `field_` more: `field_id` →
 * `field_field_id`. Every other field is its own column. No two names share a column (but past 63
 * bytes, see fitIdent), and the column depends on the name alone: the same after a restart, in every
 * row, in every replay.
 */
export function fieldColumn(field: string, reserved: ReadonlySet<string>): string {
  let bare = field.toLowerCase();
  while (bare.startsWith('field_')) bare = bare.slice('field_'.length);
  return fitIdent(reserved.has(bare) ? `field_${field}` : field);
}

/** A column distinct from `taken` when `name` collides with it case-insensitively (SQLite). */
export const disambiguate = (name: string): string => fitIdent(`${name}_${hash8(name)}`);

export const RESERVED_SQL: ReadonlySet<string> = new Set(ROW_COLUMNS);

/**
 * How an issuer is written into a text column: `group/user`, then `/<token id>` when the event was
 * written with a token (`doctors/dr-house/edbx_Q2x9fA`). A new fixed column would take the name of
 * field columns tables may already have, so the token id rides in the text (a token's group and user,
 * and its id, hold no `/`).
 */
export const issuerText = (by: EventIssuer): string =>
  by.token === undefined ? `${by.group}/${by.user}` : `${by.group}/${by.user}/${by.token}`;
