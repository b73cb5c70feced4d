import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { completionSpot } from '../../src/core/data/completionSpot';
import { initWorkspace, buildWorkspaceData } from '../../src/core/workspace';
import { productLayout, workspaceLayout } from '../../src/core/paths';
import { repoRoot, tempWorkspace } from '../helpers/tmp';

test('the first completion is shown in the largest domain, at the end of a line that opens something', () => {
  const py = (i: number) => `import os\n\n\ndef f${i}(x):\n    return x + ${i}\n\n\nclass C${i}:\n    def g(self, y):\n        return y * ${i}\n`.repeat(4);
  const files: Record<string, string> = {};
  for (let i = 0; i < 12; i++) files[`src/m${i}.py`] = py(i);
  for (let i = 0; i < 3; i++) files[`docs/d${i}.md`] = `# Doc ${i}\n\nShort.\n`;
  const ws = tempWorkspace(files);
  try {
    const layout = workspaceLayout(ws.root);
    initWorkspace(layout);
    const manifest = buildWorkspaceData(layout, productLayout(repoRoot()));
    const spot = completionSpot(layout, manifest);
    assert.ok(spot, 'a spot is found');
    assert.equal(spot.domain, 'python');
    const line = readFileSync(join(ws.root, spot.file), 'utf8').split('\n')[spot.line]!;
    assert.match(line, /:$/, 'the line opens a block');
    assert.equal(spot.col, line.length, 'the cursor at its end');
  } finally {
    ws.cleanup();
  }
});
