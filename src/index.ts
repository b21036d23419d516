/**
 * cubbydb: a table-less hash key-value store for Node.js.
 *
 * This is the package's public surface. Everything exported here is part of
 * the API contract (docs/api.md); everything else is internal.
 */

export { CubbyError, ErrorCode, isCubbyError, type CubbyErrorCode } from './errors'
