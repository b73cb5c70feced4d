import { spawnTrainer, describeFailure } from '../../core/trainer/process';
import { choosePython } from '../../core/trainer/python';
import { EXIT, productRoot, product, print } from '../args';
import type { Values } from '../args';

export async function cmdDoctor(values: Values): Promise<number> {
  const python = choosePython(productRoot, values.python);
  const proc = spawnTrainer({ python: python.command, trainerDir: product.trainerDir, command: 'doctor', onEvent: (e) => {
    if (e.type === 'hello') {
      print(values, `python: ${python.command} (${python.source})\ntorch: ${e.torch}\ndevice: ${e.device}${e.gpu ? ` — ${e.gpu}, ${e.gpu_memory_gb} GB` : ' (no CUDA GPU: training runs on CPU)'}`, { ...e, python: python.command, pythonSource: python.source, pythonVersion: e.python });
    }
  } });
  const exit = await proc.exited;
  if (!exit.done) {
    process.stderr.write(`moa doctor: ${describeFailure(exit)}\n`);
    return EXIT.failed;
  }
  return EXIT.ok;
}
