import { randomUUID } from 'node:crypto';
import type { FindOptionsOrder, FindOptionsWhere, ObjectLiteral, Repository } from 'typeorm';

interface TenantOwned extends ObjectLiteral {
  id: string;
  tenantId: string | null;
}

type Where<T> = FindOptionsWhere<T>;

/**
 * The one place tenant scoping happens: every read, write and delete through this wrapper is
 * constrained to one tenant, so no call site can forget the condition. A `where` that names a
 * different tenant is a programming error and throws.
 */
export class TenantScopedRepository<T extends TenantOwned> {
  constructor(
    private readonly repository: Repository<T>,
    readonly tenantId: string,
  ) {}

  private scope(where: Where<T> = {}): Where<T> {
    const given = (where as { tenantId?: unknown }).tenantId;
    if (given !== undefined && given !== this.tenantId) {
      throw new Error('Cross-tenant query refused');
    }
    return { ...where, tenantId: this.tenantId };
  }

  find(
    where: Where<T> = {},
    options: { order?: FindOptionsOrder<T>; skip?: number; take?: number } = {},
  ): Promise<T[]> {
    return this.repository.find({ where: this.scope(where), ...options });
  }

  findOne(where: Where<T>): Promise<T | null> {
    return this.repository.findOne({ where: this.scope(where) });
  }

  findById(id: string): Promise<T | null> {
    return this.findOne({ id } as Where<T>);
  }

  count(where: Where<T> = {}): Promise<number> {
    return this.repository.count({ where: this.scope(where) });
  }

  /** Inserts a new row owned by this tenant (id and timestamps filled in). */
  async insert(values: Omit<Partial<T>, 'tenantId'>): Promise<T> {
    const now = new Date();
    const row = this.repository.create({
      id: randomUUID(),
      ...stamps(this.repository, now),
      ...values,
      tenantId: this.tenantId,
    } as unknown as T);
    await this.repository.insert(row);
    return row;
  }

  /** Updates the row with this id if (and only if) this tenant owns it. */
  async update(id: string, patch: Omit<Partial<T>, 'tenantId' | 'id'>): Promise<T | null> {
    const row = await this.findById(id);
    if (!row) {
      return null;
    }
    Object.assign(row, patch);
    if (hasColumn(this.repository, 'updatedAt')) {
      (row as { updatedAt?: Date }).updatedAt = new Date();
    }
    await this.repository.save(row);
    return row;
  }

  /** Deletes matching rows of this tenant; returns how many went. */
  async delete(where: Where<T>): Promise<number> {
    const result = await this.repository.delete(this.scope(where));
    return result.affected ?? 0;
  }
}

function hasColumn<T extends ObjectLiteral>(repository: Repository<T>, property: string): boolean {
  return repository.metadata.findColumnWithPropertyName(property) !== undefined;
}

/** createdAt/updatedAt for the entity's columns that exist. */
export function stamps<T extends ObjectLiteral>(
  repository: Repository<T>,
  now: Date,
): Record<string, Date> {
  const out: Record<string, Date> = {};
  for (const property of ['createdAt', 'updatedAt']) {
    if (hasColumn(repository, property)) {
      out[property] = now;
    }
  }
  return out;
}
