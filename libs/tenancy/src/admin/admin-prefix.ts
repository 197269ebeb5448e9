/** Where the admin API lives; the version is part of the path. */
export const ADMIN_PREFIX = '/admin/v1';
