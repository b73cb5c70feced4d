import { parseArgs } from 'node:util';
import { MoaError, errnoHint, errorMessage, isErrnoError } from '../core/util/errors';
import { EXIT, OPTIONS, UsageError, type Values } from './args';
import { HELP } from './help';
import { cmdBase } from './commands/base';
import { cmdComplete } from './commands/complete';
import { cmdData } from './commands/data';
import { cmdDemo } from './commands/demo';
import { cmdDoctor } from './commands/doctor';
import { cmdEval } from './commands/eval';
import { cmdExperts } from './commands/experts';
import { cmdInit } from './commands/init';
import { cmdReport } from './commands/report';
import { cmdRoute } from './commands/route';
import { cmdServe } from './commands/serve';
import { cmdSetup } from './commands/setup';
import { cmdTrain } from './commands/train';

const COMMANDS: Record<string, (v: Values, p: string[]) => Promise<number>> = {
  init: cmdInit,
  data: cmdData,
  train: cmdTrain,
  base: cmdBase,
  complete: cmdComplete,
  experts: cmdExperts,
  route: cmdRoute,
  serve: cmdServe,
  setup: cmdSetup,
  eval: cmdEval,
  report: cmdReport,
  doctor: cmdDoctor,
  demo: cmdDemo,
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP[''] + '\n');
    return command ? EXIT.ok : EXIT.usage;
  }
  const run = COMMANDS[command];
  if (!run) {
    process.stderr.write(`moa: unknown command "${command}"\n\n${HELP['']}\n`);
    return EXIT.usage;
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: OPTIONS, allowPositionals: true, strict: true });
    if (values.help) {
      process.stdout.write(HELP[command] + '\n');
      return EXIT.ok;
    }
    return await run(values as Values, positionals);
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`moa ${command}: ${errorMessage(e)}\n\n${HELP[command]}\n`);
      return EXIT.usage;
    }
    // A file-system failure (a full disk, a permission) too: one line with the file and the errno, no stack.
    if (e instanceof MoaError || isErrnoError(e)) {
      const hint = e instanceof MoaError ? e.hint : errnoHint(e);
      process.stderr.write(`moa ${command}: ${e.message}${hint ? `\n  hint: ${hint}` : ''}\n`);
      return EXIT.failed;
    }
    process.stderr.write(`moa ${command}: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return EXIT.failed;
  }
}

main(process.argv.slice(2)).then((code) => {
  process.exitCode = code;
});
