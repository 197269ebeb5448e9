import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

export class FieldErrorsDto {
  @ApiProperty({ example: 'slug' })
  field!: string;

  @ApiProperty({ type: [String] })
  messages!: string[];
}

/** RFC 9457 problem details (application/problem+json). */
export class ProblemDetailsDto {
  @ApiProperty({ example: 'urn:portico:problem:validation' })
  type!: string;

  @ApiProperty({ example: 'Bad Request' })
  title!: string;

  @ApiProperty({ example: 400 })
  status!: number;

  @ApiProperty()
  detail!: string;

  @ApiProperty({ example: '/admin/v1/tenants' })
  instance!: string;

  @ApiPropertyOptional({ type: [FieldErrorsDto] })
  errors?: FieldErrorsDto[];

  @ApiPropertyOptional({ description: 'Request id, on 500 responses only' })
  correlationId?: string;
}
