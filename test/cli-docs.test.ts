// The documentation tells the truth: the README quick start's cubby commands
// run as written, the plan output quoted in docs/operations.md is what
// `cubby plan` prints, and the README's comparison table is the one
// scripts/readme-bench.js renders from bench/results/results.json.
import test from 'ava'
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { cubby } from './helpers/cli'

const ROOT = path.resolve(__dirname, '..', '..')
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8')

/** The shell lines of the README's "Quick start" section that run cubby. */
function quickStartCommands(): string[][] {
  const section = README.slice(README.indexOf('## Quick start'), README.indexOf('\n## ', README.indexOf('## Quick start') + 1))
  return section
    .split('\n')
    .filter((line) => line.startsWith('npx cubby '))
    .map((line) => line.replace(/#.*$/, '').trim().split(/\s+/).slice(2))
}

test('the README quick start runs word for word', async (t) => {
  const commands = quickStartCommands()
  t.true(commands.length >= 4, `${commands.length} commands`)
  const directory = fs.mkdtempSync(path.join(os.tmpdir(), 'cubby-readme-'))
  for (const args of commands) {
    const result = await cubby(args, { cwd: directory })
    t.is(result.status, 0, `cubby ${args.join(' ')}: ${result.stderr}`)
    if (args[0] === 'get') t.is(result.text, 'Ada', 'get prints Ada, as the comment says')
    if (args[0] === 'info') t.regex(result.text, /keys +1\n/)
  }
})

test("docs/operations.md quotes cubby plan's output as it is", async (t) => {
  const operations = fs.readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8')
  const quoted = /npx cubby plan --keys 100M --value-size 400\n```\n\n```\n([\s\S]*?)```/.exec(operations)
  t.truthy(quoted, 'the plan example is there')
  const result = await cubby(['plan', '--keys', '100M', '--value-size', '400'])
  t.is(result.text, quoted![1])
})

test("the README's comparison table is rendered from bench/results/results.json", (t) => {
  const check = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'readme-bench.js'), '--check'], { encoding: 'utf8' })
  t.is(check.status, 0, check.stderr)
  t.regex(README, /<!-- bench-table:begin[^\n]*-->\n[\s\S]*\| RocksDB \| [\d,]+ \|[\s\S]*<!-- bench-table:end -->/)
})
