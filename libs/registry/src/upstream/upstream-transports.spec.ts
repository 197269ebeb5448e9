import { PassThrough } from 'node:stream';
import { once } from 'node:events';
import { relayStderr } from './upstream-transports';

async function relayed(write: (stream: PassThrough) => void): Promise<string[]> {
  const stream = new PassThrough();
  const lines: string[] = [];
  relayStderr(stream, (line) => lines.push(line));
  write(stream);
  stream.end();
  await once(stream, 'end');
  return lines;
}

describe(relayStderr.name, () => {
  it('logs whole lines, across chunks, without blank ones', async () => {
    const lines = await relayed((s) => {
      s.write('first li');
      s.write('ne\r\n\n  \nsecond\nunterminated');
    });
    expect(lines).toEqual(['first line', 'second', 'unterminated']);
  });

  it('cuts long lines and keeps reading after them', async () => {
    const lines = await relayed((s) => {
      s.write(`${'x'.repeat(5000)}\nnext\n`);
    });
    expect(lines).toEqual([`${'x'.repeat(2048)} [cut]`, 'next']);
  });

  it('logs at most 50 lines a second and counts the rest', async () => {
    const lines = await relayed((s) => {
      s.write(Array.from({ length: 80 }, (_, i) => `line ${i}`).join('\n') + '\n');
    });
    expect(lines).toHaveLength(50);
    expect(lines.at(-1)).toBe('line 49');
  });
});
