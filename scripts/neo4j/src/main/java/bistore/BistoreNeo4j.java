package bistore;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.ConnectorPortRegister;
import org.neo4j.configuration.connectors.ConnectorType;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.kernel.internal.GraphDatabaseAPI;

/**
 * Runs a real Neo4j Community server for bistore's development and tests.
 *
 * Usage: BistoreNeo4j [--auth-password-file FILE] HOME HTTP_PORT [BOLT_PORT]
 *
 * The data lives under HOME and survives a restart of this process (SIGTERM
 * or SIGKILL), which the fault tests rely on. Both connectors listen on
 * 127.0.0.1 only. Auth is off, unless --auth-password-file is given: then
 * basic auth is on and the user neo4j's password is the file's first line
 * (set at every start, no change required). A port of 0 lets the kernel pick one. Once
 * the server answers, the bound ports are written to HOME/ports (atomically,
 * "http=<port> bolt=<port>") and printed on stdout.
 */
public final class BistoreNeo4j {
    public static void main(String[] argv) throws Exception {
        List<String> rest = new ArrayList<>();
        Path passwordFile = null;
        for (int i = 0; i < argv.length; i++) {
            if (argv[i].equals("--auth-password-file") && i + 1 < argv.length)
                passwordFile = Path.of(argv[++i]);
            else
                rest.add(argv[i]);
        }
        String[] args = rest.toArray(new String[0]);
        if (args.length < 2 || args.length > 3) {
            System.err.println("usage: BistoreNeo4j [--auth-password-file FILE] HOME HTTP_PORT [BOLT_PORT]");
            System.exit(2);
        }
        String password = passwordFile == null ? null
                : Files.readString(passwordFile, StandardCharsets.UTF_8).lines().findFirst().orElse("");
        Path home = Path.of(args[0]).toAbsolutePath();
        int httpPort = Integer.parseInt(args[1]);
        /* Bolt is always on: the Query API (/db/{db}/query/v2) runs its
         * statements over Bolt's in-process channel and answers every request
         * with Neo.DatabaseError.General.UnknownError without it. */
        boolean bolt = true;
        int boltPort = args.length == 3 ? Integer.parseInt(args[2]) : 0;
        Files.createDirectories(home);
        Files.deleteIfExists(home.resolve("ports"));

        DatabaseManagementService dbms = new DatabaseManagementServiceBuilder(home)
                .setConfig(HttpConnector.enabled, true)
                .setConfig(HttpConnector.listen_address, new SocketAddress("127.0.0.1", httpPort))
                .setConfig(BoltConnector.enabled, bolt)
                .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", boltPort))
                .setConfig(GraphDatabaseSettings.auth_enabled, password != null)
                .build();
        CountDownLatch stop = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            dbms.shutdown();
            stop.countDown();
        }));

        if (password != null) /* before anyone can connect with it */
            dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME).executeTransactionally(
                    "ALTER USER neo4j SET PASSWORD $p CHANGE NOT REQUIRED", Map.of("p", password));

        GraphDatabaseAPI db = (GraphDatabaseAPI) dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
        ConnectorPortRegister ports = db.getDependencyResolver().resolveDependency(ConnectorPortRegister.class);
        int http = ports.getLocalAddress(ConnectorType.HTTP).getPort();
        int boltBound = ports.getLocalAddress(ConnectorType.BOLT).getPort();
        String line = "http=" + http + " bolt=" + boltBound;
        writeAtomically(home.resolve("ports"), line + "\n");
        System.out.println("bistore-neo4j ready " + line);
        System.out.flush();
        stop.await();
    }

    private static void writeAtomically(Path target, String text) throws IOException {
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
        Files.writeString(tmp, text, StandardCharsets.UTF_8);
        Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
}
