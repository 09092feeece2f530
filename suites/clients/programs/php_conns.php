<?php
// php_conns.php — PHP 8.2's sqlite3, PDO sqlite, pgsql and PDO pgsql: two connections, one closed, then SIGKILL to itself so PHP's shutdown cannot close the other.
// (A plain exit would not leak: PHP closes every connection when the request ends.)
$mode = $argv[1];
$pgconn = "host=" . getenv("PGHOST") . " port=" . getenv("PGPORT") . " user=" . getenv("PGUSER")
        . " dbname=" . getenv("PGDATABASE");
switch ($mode) {
case "sqlite3":
    $kept = new SQLite3(":memory:");
    $closed = new SQLite3(":memory:");
    if ($closed->querySingle("SELECT 1") !== 1) exit(2);
    $closed->close();
    break;
case "pdo_sqlite":
    $kept = new PDO("sqlite::memory:");
    $closed = new PDO("sqlite::memory:");
    if ($closed->query("SELECT 1")->fetchColumn() != 1) exit(2);
    $closed = null; // PDO has no close(): the last reference going closes it
    break;
case "pgsql":
    $kept = pg_connect($pgconn, PGSQL_CONNECT_FORCE_NEW);
    $closed = pg_connect($pgconn, PGSQL_CONNECT_FORCE_NEW);
    if (!$kept || !$closed || pg_fetch_result(pg_query($closed, "SELECT 1"), 0, 0) != 1) exit(2);
    pg_close($closed);
    break;
case "pdo_pgsql":
    $dsn = "pgsql:host=" . getenv("PGHOST") . ";port=" . getenv("PGPORT") . ";dbname=" . getenv("PGDATABASE");
    $kept = new PDO($dsn, getenv("PGUSER"));
    $closed = new PDO($dsn, getenv("PGUSER"));
    if ($closed->query("SELECT 1")->fetchColumn() != 1) exit(2);
    $closed = null;
    break;
default:
    exit(2);
}
echo "pid=" . getmypid() . "\n";
posix_kill(getmypid(), SIGKILL);
