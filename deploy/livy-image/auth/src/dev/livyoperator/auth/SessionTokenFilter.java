package dev.livyoperator.auth;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.security.MessageDigest;
import java.util.Base64;
import javax.servlet.Filter;
import javax.servlet.FilterChain;
import javax.servlet.FilterConfig;
import javax.servlet.ServletException;
import javax.servlet.ServletRequest;
import javax.servlet.ServletResponse;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;

/**
 * Livy's own authentication hook ({@code livy.server.auth.type = custom},
 * {@code livy.server.auth.custom.class = dev.livyoperator.auth.SessionTokenFilter}): a request passes only
 * with the LivySession's credential, as {@code Authorization: Bearer <token>} or as the password of Basic
 * auth. The operator writes the credential into a Secret owned by the LivySession and mounts it; the
 * gateway and the operator derive the same value from a key they share, so nothing else can talk to the
 * server, whatever the network allows.
 *
 * <p>Init parameters ({@code livy.server.auth.custom.param.<name>}): {@code token-file}, the file holding
 * the credential (re-read when it changes, so a rotated Secret takes effect without a restart), and
 * {@code open-paths}, comma-separated paths any GET may read without it ({@code /version}: the kubelet's
 * probe, and it reveals nothing).
 */
public final class SessionTokenFilter implements Filter {
  private static final long RECHECK_MS = 10_000;

  private Path tokenFile;
  private String[] openPaths;
  private volatile byte[] expected = new byte[0];
  private volatile long modified = -1;
  private volatile long checkedAt = 0;

  @Override
  public void init(FilterConfig config) throws ServletException {
    String file = config.getInitParameter("token-file");
    if (file == null || file.isEmpty()) throw new ServletException("SessionTokenFilter: token-file is not set");
    tokenFile = Paths.get(file);
    String open = config.getInitParameter("open-paths");
    openPaths = (open == null ? "/version" : open).split(",");
    reload(true);
    if (expected.length == 0) throw new ServletException("SessionTokenFilter: " + file + " holds no credential");
  }

  private void reload(boolean force) {
    long now = System.currentTimeMillis();
    if (!force && now - checkedAt < RECHECK_MS) return;
    checkedAt = now;
    try {
      long m = Files.getLastModifiedTime(tokenFile).toMillis();
      if (!force && m == modified) return;
      byte[] b = new String(Files.readAllBytes(tokenFile), StandardCharsets.UTF_8).trim().getBytes(StandardCharsets.UTF_8);
      if (b.length > 0) {
        expected = b;
        modified = m;
      }
    } catch (IOException e) {
      // keep the last credential read: a Secret being updated is replaced atomically by the kubelet
    }
  }

  /** The credential a request presents, or null. */
  static byte[] presented(String authorization) {
    if (authorization == null) return null;
    int sp = authorization.indexOf(' ');
    if (sp < 0) return null;
    String scheme = authorization.substring(0, sp);
    String rest = authorization.substring(sp + 1).trim();
    if (scheme.equalsIgnoreCase("Bearer")) return rest.getBytes(StandardCharsets.UTF_8);
    if (scheme.equalsIgnoreCase("Basic")) {
      try {
        String decoded = new String(Base64.getDecoder().decode(rest), StandardCharsets.UTF_8);
        int colon = decoded.indexOf(':');
        return colon < 0 ? null : decoded.substring(colon + 1).getBytes(StandardCharsets.UTF_8);
      } catch (IllegalArgumentException e) {
        return null;
      }
    }
    return null;
  }

  private boolean open(HttpServletRequest r) {
    if (!"GET".equals(r.getMethod())) return false;
    String path = r.getRequestURI();
    for (String p : openPaths) if (p.trim().equals(path)) return true;
    return false;
  }

  @Override
  public void doFilter(ServletRequest req, ServletResponse res, FilterChain chain)
      throws IOException, ServletException {
    HttpServletRequest r = (HttpServletRequest) req;
    if (open(r)) {
      chain.doFilter(req, res);
      return;
    }
    reload(false);
    byte[] given = presented(r.getHeader("Authorization"));
    // constant time: the comparison does not tell how much of a guess was right
    if (given != null && MessageDigest.isEqual(given, expected)) {
      chain.doFilter(req, res);
      return;
    }
    HttpServletResponse w = (HttpServletResponse) res;
    w.setStatus(HttpServletResponse.SC_UNAUTHORIZED);
    w.setHeader("WWW-Authenticate", "Bearer realm=\"livy\"");
    w.setContentType("application/json;charset=utf-8");
    w.getWriter()
        .write("{\"msg\":\"Unauthorized: this Livy server answers only its LivySession's gateway and operator\"}");
  }

  @Override
  public void destroy() {}
}
