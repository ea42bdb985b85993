CREATE TABLE "flights_records" (
	"id" text PRIMARY KEY NOT NULL,
	"source_id" text NOT NULL,
	"ts" timestamp with time zone NOT NULL,
	"received_at" timestamp with time zone NOT NULL,
	"via" text NOT NULL,
	"data" jsonb NOT NULL,
	"flags" text[] DEFAULT '{}' NOT NULL
);
--> statement-breakpoint
CREATE TABLE "flights_rollups" (
	"source_id" text NOT NULL,
	"width" text NOT NULL,
	"bucket_start" timestamp with time zone NOT NULL,
	"quality" text NOT NULL,
	"count" integer NOT NULL,
	"departure_delay_count" integer DEFAULT 0 NOT NULL,
	"departure_delay_sum" double precision,
	"departure_delay_min" double precision,
	"departure_delay_max" double precision,
	"arrival_delay_count" integer DEFAULT 0 NOT NULL,
	"arrival_delay_sum" double precision,
	"arrival_delay_min" double precision,
	"arrival_delay_max" double precision,
	"altitude_count" integer DEFAULT 0 NOT NULL,
	"altitude_sum" double precision,
	"altitude_min" double precision,
	"altitude_max" double precision,
	"speed_count" integer DEFAULT 0 NOT NULL,
	"speed_sum" double precision,
	"speed_min" double precision,
	"speed_max" double precision,
	CONSTRAINT "flights_rollups_source_id_width_bucket_start_quality_pk" PRIMARY KEY("source_id","width","bucket_start","quality")
);
--> statement-breakpoint
CREATE INDEX "flights_records_source_ts" ON "flights_records" USING btree ("source_id","ts" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "flights_records_ts" ON "flights_records" USING btree ("ts" DESC NULLS LAST,"id" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "flights_rollups_width_bucket" ON "flights_rollups" USING btree ("width","bucket_start");