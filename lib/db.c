/* db: the module's face: set-up and shutdown of its parts (dbconn: the
 * connections; dbexec: statements and transactions; dbres: results and
 * errors; dblisten: LISTEN; dbtx: pipelined transactions).  Contracts in
 * db.h; what the parts share in dbpriv.h. */
#include "db.h"

#include "dbpriv.h"

int db_init(const char *primary, const char *read, long statement_timeout_ms)
{
	return dbconn_init(primary, read, statement_timeout_ms);
}

void db_close(void)
{
	dbconn_close();
	dblisten_close();
	db_tx_close();
}
