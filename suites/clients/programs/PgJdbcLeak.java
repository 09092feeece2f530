// PgJdbcLeak.java — pgjdbc (Debian's libpostgresql-jdbc-java) over TCP (args: host port user [tls]): two connections, one closed, Runtime.halt with the other open.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;

public class PgJdbcLeak {
    public static void main(String[] args) throws Exception {
        // tls: required, the server's throwaway self-signed certificate not verified
        String ssl = args.length > 3 && args[3].equals("tls")
                ? "&sslmode=require&sslfactory=org.postgresql.ssl.NonValidatingFactory" : "&sslmode=disable";
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/postgres?user=" + args[2] + ssl;
        Connection kept = DriverManager.getConnection(url);
        Connection closed = DriverManager.getConnection(url);
        try (Statement st = closed.createStatement(); ResultSet rs = st.executeQuery("SELECT 1")) {
            if (!rs.next() || rs.getInt(1) != 1) throw new IllegalStateException("unexpected answer");
        }
        closed.close();
        try (Statement st = kept.createStatement()) {
            st.execute("SELECT 2");
        }
        System.out.println("pid=" + ProcessHandle.current().pid());
        System.out.flush();
        Runtime.getRuntime().halt(0); // no shutdown hooks, no finalizers: `kept` stays open
    }
}
