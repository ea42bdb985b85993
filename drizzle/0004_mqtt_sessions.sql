CREATE TABLE "mqtt_sessions" (
	"scope" text NOT NULL,
	"client_id" text NOT NULL,
	"opened_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "mqtt_sessions_scope_client_id_pk" PRIMARY KEY("scope","client_id")
);
