/**
 * `cubby bench`: runs the benchmark in bench/ (YCSB against RocksDB, LMDB
 * and LevelDB; see the README's Benchmark section). The quick run by
 * default (what `npm run bench:quick` runs), the full reference run with
 * --full (`npm run bench`); every other flag goes to the benchmark
 * unchanged. It compiles the benchmark (`npm run build:bench`, into
 * dist-bench/) when a source under bench/ is newer than the compiled runs,
 * and runs it with the dist/ this command runs from, which is built
 * already: nothing rewrites dist/ under other processes.
 *
 * The benchmark compares engines that are development dependencies, so it
 * runs from a source checkout (git clone, npm ci), not from an installed
 * package. With --json the benchmark's own output goes to stderr and its
 * results.json to stdout.
 */

import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as nodePath from 'node:path'
import { CubbyError, ErrorCode } from '../../errors'
import { type Command, EXIT, write } from '../command'

/** The package's root: dist/cli/commands/ is three levels below it. */
const PACKAGE_ROOT = nodePath.resolve(__dirname, '..', '..', '..')

/** Newest modification time of the TypeScript sources under `directory` (results and other data skipped). */
function newestSource(directory: string): number {
  let newest = 0
  for (const entry of fs.readdirSync(directory, { withFileTypes: true })) {
    const path = nodePath.join(directory, entry.name)
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path))
    else if (entry.name.endsWith('.ts') || entry.name === 'tsconfig.json') newest = Math.max(newest, fs.statSync(path).mtimeMs)
  }
  return newest
}

/** Whether dist-bench/ holds both runs, compiled after the last change to bench/. */
function benchmarkIsCompiled(): boolean {
  const compiled = ['quick.js', 'run.js'].map((name) => nodePath.join(PACKAGE_ROOT, 'dist-bench', name))
  if (!compiled.every((path) => fs.existsSync(path))) return false
  return Math.min(...compiled.map((path) => fs.statSync(path).mtimeMs)) >= newestSource(nodePath.join(PACKAGE_ROOT, 'bench'))
}

function npmCommand(): [string, string[]] {
  const cli = process.env.npm_execpath
  return cli !== undefined && cli.endsWith('.js') ? [process.execPath, [cli]] : ['npm', []]
}

function run(command: string, argv: string[], stdout: 'inherit' | NodeJS.WriteStream, io: { stderr: NodeJS.WriteStream }): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { cwd: PACKAGE_ROOT, stdio: ['inherit', stdout === 'inherit' ? 'inherit' : 'pipe', 'inherit'] })
    if (stdout !== 'inherit') child.stdout?.pipe(io.stderr, { end: false })
    child.once('error', reject)
    child.once('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128 + (os.constants.signals[signal] ?? 0))))
  })
}

export const benchCommand: Command = {
  name: 'bench',
  synopsis: 'bench [--full] [benchmark flags…]',
  summary: 'run the benchmark (quick run by default) from a source checkout',
  help: `Runs the benchmark in bench/: by default the quick run (npm run bench:quick:
1M keys into CubbyDB and RocksDB, memory, disk, throughput and reads per GET
side by side; a minute or two), with --full the reference run (npm run bench:
every engine and workload; hours). Every other flag goes to the benchmark;
cubby bench -- --help lists them. Needs a source checkout with npm ci done.

  --full                   the full reference run instead of the quick one
  --json                   the benchmark's output to stderr, its results.json to stdout`,
  options: {},
  rawArguments: true,
  async run(args, io) {
    if (!fs.existsSync(nodePath.join(PACKAGE_ROOT, 'bench', 'quick.ts'))) {
      throw new CubbyError(ErrorCode.INVALID_ARGUMENT, `cubby bench runs the benchmark from a source checkout of cubbydb (git clone, npm ci); ${PACKAGE_ROOT} has no bench/`)
    }
    const passed = args.positionals.filter((argument) => argument !== '--full')
    const script = nodePath.join(PACKAGE_ROOT, 'dist-bench', passed.length === args.positionals.length ? 'quick.js' : 'run.js')
    if (!benchmarkIsCompiled()) {
      const [npm, npmArguments] = npmCommand()
      const built = await run(npm, [...npmArguments, 'run', '--silent', 'build:bench'], io.stderr, io)
      if (built !== EXIT.ok) throw new CubbyError(ErrorCode.INVALID_ARGUMENT, `compiling the benchmark (npm run build:bench) failed with status ${built}; is this a checkout with npm ci done?`)
    }
    if (!args.json) return run(process.execPath, [script, ...passed], 'inherit', io)
    const directory = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'cubby-bench-'))
    try {
      const status = await run(process.execPath, [script, ...passed, '--out', directory], io.stderr, io)
      if (status !== EXIT.ok) return status
      await write(io.stdout, fs.readFileSync(nodePath.join(directory, 'results.json')))
      return EXIT.ok
    } finally {
      fs.rmSync(directory, { recursive: true, force: true })
    }
  },
}
