import {
  backendExecutionSettings,
  backendSettingsProblems,
  DEFAULT_QUEUE_PRIORITY,
  DEFAULT_RETRY,
  jobPriority,
  toolExecution,
} from './execution-settings';

describe('backend execution settings', () => {
  describe(backendSettingsProblems.name, () => {
    it('accepts execution keys with good values, and leaves other keys to the backend kind', () => {
      expect(
        backendSettingsProblems({
          executor: 'queued',
          timeoutMs: 2000,
          retry: { attempts: 3, backoffMs: 100 },
          priority: 1,
          tools: { search: { executor: 'inline', timeoutMs: 50, priority: 10 }, 'odd name': {} },
          prefix: 'gh',
          nested: { anything: [1, true] },
        }),
      ).toEqual([]);
      expect(backendSettingsProblems({})).toEqual([]);
    });

    it('names every bad value with its path', () => {
      expect(
        backendSettingsProblems({
          executor: 'sometimes',
          timeoutMs: 0,
          retry: { attempts: 0, backoffMs: 'soon', jitter: 1 },
          priority: 0,
          tools: {
            search: { executor: 'queue', retry: {}, priority: 11 },
            'a.b': { timeoutMs: 1.5 },
          },
        }),
      ).toEqual(
        expect.arrayContaining([
          { path: 'executor', message: 'must be one of: inline, queued' },
          { path: 'timeoutMs', message: 'must be >= 1' },
          { path: 'retry.attempts', message: 'must be >= 1' },
          { path: 'retry.backoffMs', message: 'must be integer' },
          { path: 'retry.jitter', message: 'is not a known property' },
          { path: 'priority', message: 'must be >= 1' },
          { path: 'tools.search.priority', message: 'must be <= 10' },
          { path: 'tools.search.executor', message: 'must be one of: inline, queued' },
          { path: 'tools.search.retry.attempts', message: 'is required' },
          { path: 'tools["a.b"].timeoutMs', message: 'must be integer' },
        ]),
      );
    });

    it('refuses settings that are not an object, and tool entries that are not objects', () => {
      expect(backendSettingsProblems([])).toEqual([{ path: '', message: 'must be object' }]);
      expect(backendSettingsProblems({ tools: { x: 'queued' } })).toEqual([
        { path: 'tools.x', message: 'must be object' },
      ]);
    });
  });

  describe(toolExecution.name, () => {
    const settings = backendExecutionSettings({
      executor: 'queued',
      timeoutMs: 2000,
      tools: {
        fast: { executor: 'inline' },
        write: { retry: { attempts: 4, backoffMs: 10 }, timeoutMs: 9000 },
        never: { retry: { attempts: 1 } },
      },
    });

    it('takes the backend defaults, overridden per tool', () => {
      expect(toolExecution(settings, 'other')).toEqual({
        executor: 'queued',
        timeoutMs: 2000,
        idempotent: false,
      });
      expect(toolExecution(settings, 'fast').executor).toBe('inline');
      expect(toolExecution(settings, undefined).executor).toBe('queued');
      expect(toolExecution(backendExecutionSettings({}), 'x').executor).toBe('inline');
    });

    it('retries only idempotent tools: annotated, or with a retry policy of several attempts', () => {
      expect(toolExecution(settings, 'other', { idempotentHint: true })).toMatchObject({
        retry: DEFAULT_RETRY,
        idempotent: true,
      });
      expect(toolExecution(settings, 'other', { idempotentHint: false }).retry).toBeUndefined();
      expect(toolExecution(settings, 'write')).toEqual({
        executor: 'queued',
        timeoutMs: 9000,
        retry: { attempts: 4, backoffMs: 10 },
        idempotent: true,
      });
      // attempts: 1 turns retries off; the annotation still says a re-run is harmless.
      expect(toolExecution(settings, 'never', { idempotentHint: true })).toEqual({
        executor: 'queued',
        timeoutMs: 2000,
        idempotent: true,
      });
    });

    it('ignores stored values that are out of range instead of failing', () => {
      const stored = backendExecutionSettings({
        executor: 'maybe',
        timeoutMs: -1,
        retry: { attempts: 99 },
        tools: { x: 'queued', y: { executor: 'queued', retry: { attempts: 2 } } },
      });
      expect(stored).toEqual({
        tools: { y: { executor: 'queued', retry: { attempts: 2, backoffMs: 500 } } },
      });
      expect(toolExecution(stored, 'constructor').executor).toBe('inline');
    });
  });

  describe(jobPriority.name, () => {
    const settings = backendExecutionSettings({
      executor: 'queued',
      priority: 7,
      tools: { urgent: { priority: 1 }, stored: { priority: 42 } },
    });
    const noPriority = backendExecutionSettings({ executor: 'queued' });

    it('takes the tool’s priority, else its backend’s, over the tenant’s plan', () => {
      expect(jobPriority(toolExecution(settings, 'urgent'), 3)).toBe(1);
      expect(jobPriority(toolExecution(settings, 'other'), 3)).toBe(7);
    });

    it('takes the tenant’s plan when the settings name no priority, else the default', () => {
      expect(jobPriority(toolExecution(noPriority, 'x'), 2)).toBe(2);
      expect(jobPriority(toolExecution(noPriority, 'x'), undefined)).toBe(DEFAULT_QUEUE_PRIORITY);
    });

    it('ignores stored values out of range', () => {
      expect(jobPriority(toolExecution(settings, 'stored'), undefined)).toBe(7);
      expect(jobPriority(toolExecution(noPriority, 'x'), 0)).toBe(DEFAULT_QUEUE_PRIORITY);
    });
  });
});
