/* dblisten: LISTEN on a connection of its own (the bridge's wake-up for
 * the event outbox). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "dbpriv.h"

static struct dbconn listener = {.name = "listener"};

void dblisten_close(void)
{
	dbconn_release(&listener, "listener");
}

int db_listen(const char *channel)
{
	char sql[96];
	PGresult *r;
	PGconn *c;

	if (!listener.conninfo) {
		const char *primary = dbconn_role(DB_PRIMARY)->conninfo;

		listener.conninfo = primary ? strdup(primary) : NULL;
		if (!listener.conninfo)
			return -1;
	}
	if (listener.conn && PQstatus(listener.conn) == CONNECTION_OK)
		return 0;
	dbconn_drop(&listener);
	c = dbconn_get(&listener);
	if (!c)
		return -1;
	/* the channel name is a literal of ours, not input */
	snprintf(sql, sizeof(sql), "LISTEN %s", channel);
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		dbres_set_err(TH_EUNAVAILABLE, PQerrorMessage(c), NULL);
		PQclear(r);
		dbconn_fail(&listener, db_last_error());
		return -1;
	}
	PQclear(r);
	return 0;
}

int db_listen_fd(void)
{
	return listener.conn ? PQsocket(listener.conn) : -1;
}

int db_listen_drain(void)
{
	PGnotify *n;
	int count = 0;

	if (!listener.conn)
		return -1;
	if (!PQconsumeInput(listener.conn) || PQstatus(listener.conn) != CONNECTION_OK) {
		dbconn_fail(&listener, "listen connection lost");
		return -1;
	}
	while ((n = PQnotifies(listener.conn)) != NULL) {
		count++;
		PQfreemem(n);
	}
	return count;
}
