import { AdminError } from '../admin.errors';
import { adminValidationPipe } from '../admin-controller.decorator';
import { CreateVirtualServerDto } from './create-virtual-server.dto';
import { UpdateVirtualServerDto } from './update-virtual-server.dto';

async function validate(
  metatype: typeof CreateVirtualServerDto | typeof UpdateVirtualServerDto,
  body: unknown,
): Promise<unknown> {
  return adminValidationPipe.transform(body, { type: 'body', metatype });
}

async function fieldErrors(
  metatype: typeof CreateVirtualServerDto | typeof UpdateVirtualServerDto,
  body: unknown,
): Promise<Record<string, string[]>> {
  try {
    await validate(metatype, body);
  } catch (err) {
    if (err instanceof AdminError && err.code === 'validation') {
      return Object.fromEntries(err.errors.map((e) => [e.field, e.messages]));
    }
    throw err;
  }
  throw new Error('expected the body to be refused');
}

describe(CreateVirtualServerDto.name, () => {
  it('accepts a full definition', async () => {
    const body = {
      name: 'crm',
      title: 'CRM',
      description: 'For the sales assistant',
      tools: ['crm_*', 'search'],
      prompts: ['brief'],
      resources: ['crm://accounts/*'],
      resourceTemplates: ['crm://accounts/{id}'],
    };
    await expect(validate(CreateVirtualServerDto, body)).resolves.toMatchObject(body);
  });

  it('accepts a name alone: every list defaults to empty later', async () => {
    await expect(validate(CreateVirtualServerDto, { name: 'empty' })).resolves.toMatchObject({
      name: 'empty',
    });
  });

  it('lists every invalid field, naming bad entries by index', async () => {
    expect(
      await fieldErrors(CreateVirtualServerDto, {
        name: 'Bad Name',
        title: '',
        tools: ['ok', 'not ok', 'ok'],
        prompts: 'brief',
        resources: ['with space'],
        resourceTemplates: [7],
      }),
    ).toEqual({
      name: [
        'name must be 1 to 48 lowercase letters, digits or hyphens, not starting or ending with a hyphen',
      ],
      title: ['title must be longer than or equal to 1 characters'],
      tools: [
        expect.stringMatching(
          /^tools\[1\] must be a tool name .*; tools\[2\] duplicates tools\[0\] \("ok"\)$/,
        ),
      ],
      prompts: ['prompts must be an array of strings'],
      resources: [expect.stringMatching(/^resources\[0\] must be a URI \(/)],
      resourceTemplates: ['resourceTemplates[0] must be a string'],
    });
  });

  it.each(['sse', 'messages'])('refuses the reserved name %s', async (name) => {
    expect(await fieldErrors(CreateVirtualServerDto, { name })).toEqual({
      name: [`name "${name}" is reserved by the gateway's routes under /mcp/{tenant}`],
    });
  });

  it('requires a name and refuses unknown properties', async () => {
    expect(await fieldErrors(CreateVirtualServerDto, { tools: ['*'], expose: [] })).toEqual({
      name: ['name must be a string'],
      expose: ['property expose should not exist'],
    });
  });
});

describe(UpdateVirtualServerDto.name, () => {
  it('accepts a partial change and nulls that clear title and description', async () => {
    await expect(
      validate(UpdateVirtualServerDto, { tools: ['*'], title: null, description: null }),
    ).resolves.toMatchObject({ tools: ['*'], title: null, description: null });
  });

  it('does not rename: the name is the endpoint', async () => {
    expect(await fieldErrors(UpdateVirtualServerDto, { name: 'other' })).toEqual({
      name: ['property name should not exist'],
    });
  });

  it('checks the lists it is given', async () => {
    expect(await fieldErrors(UpdateVirtualServerDto, { prompts: ['a\u0000b'] })).toEqual({
      prompts: [expect.stringMatching(/^prompts\[0\] must be a prompt name/)],
    });
  });
});
