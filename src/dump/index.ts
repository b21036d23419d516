/**
 * Dumps: a store's pairs as a versioned, checksummed stream (docs/format.md
 * section 4), for backup, restore, and moving a store between devices or
 * compression modes. Public through src/index.ts; `cubby export` and
 * `cubby import` are built on it.
 */

export { exportStore, type DumpSummary, type ExportOptions } from './export'
export { DumpReader, importStore, type DumpFrame, type ImportOptions } from './import'
export { DUMP_VERSION, type DumpHeader } from './format'
