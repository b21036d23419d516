// Every name the package exports, and every public member of its classes
// and interfaces, carries a doc comment in the built declarations
// (dist/index.d.ts and what it re-exports): what an editor shows on hover.
import test from 'ava'
import * as path from 'node:path'
import ts from 'typescript'

const ENTRY = path.resolve(__dirname, '..', '..', '..', 'dist', 'index.d.ts')

function documentation(symbol: ts.Symbol, checker: ts.TypeChecker): string {
  return ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim()
}

function isPrivate(symbol: ts.Symbol): boolean {
  return (symbol.declarations ?? []).some((declaration) => (ts.getCombinedModifierFlags(declaration) & ts.ModifierFlags.Private) !== 0)
}

/** The interface or class a type alias names, if it names one (Stats = EngineStats). */
function namedTarget(symbol: ts.Symbol, checker: ts.TypeChecker): ts.Symbol | undefined {
  if ((symbol.flags & ts.SymbolFlags.TypeAlias) === 0) return undefined
  const target = checker.getDeclaredTypeOfSymbol(symbol).getSymbol()
  return target !== undefined && (target.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.Class)) !== 0 ? target : undefined
}

test('every export of dist/index.d.ts, and every public member of its classes and interfaces, has a doc comment', (t) => {
  const program = ts.createProgram([ENTRY], { strict: true, types: ['node'], skipLibCheck: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10, lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'] })
  const checker = program.getTypeChecker()
  const source = program.getSourceFile(ENTRY)
  t.truthy(source, `${ENTRY} is built`)
  const moduleSymbol = checker.getSymbolAtLocation(source!)!
  const undocumented: string[] = []
  const exported = checker.getExportsOfModule(moduleSymbol)
  t.true(exported.length >= 25, `${exported.length} exports`)
  for (const name of ['open', 'plan', 'CubbyDB', 'CubbyError', 'exportStore', 'importStore', 'METRICS_CONTENT_TYPES', 'OpenOptions', 'Stats', 'MetricsOptions']) {
    t.true(exported.some((symbol) => symbol.name === name), `${name} is exported`)
  }
  for (const alias of exported) {
    const symbol = (alias.flags & ts.SymbolFlags.Alias) !== 0 ? checker.getAliasedSymbol(alias) : alias
    if (documentation(symbol, checker) === '') undocumented.push(alias.name)
    const owner = (symbol.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.Class)) !== 0 ? symbol : namedTarget(symbol, checker)
    for (const member of owner?.members?.values() ?? []) {
      if (isPrivate(member) || (member.flags & ts.SymbolFlags.TypeParameter) !== 0) continue
      if (documentation(member, checker) === '') undocumented.push(`${alias.name}.${member.name}`)
    }
  }
  t.deepEqual(undocumented, [], `undocumented: ${undocumented.join(', ')}`)
})
