"""Draws the slurmbook logo (a small asset graph on a rust-orange tile) as SVG
and as 32x32 / 64x64 PNGs, with the standard library only."""
import math, struct, zlib

BG = (183, 65, 14)      # rust orange
FG = (255, 255, 255)
NODES = [(0.30, 0.28), (0.70, 0.28), (0.50, 0.72)]
EDGES = [(0, 2), (1, 2)]
R_NODE, W_EDGE, R_TILE = 0.12, 0.07, 0.18

def svg():
    s = 64
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{s}" height="{s}" viewBox="0 0 {s} {s}">',
             f'<rect width="{s}" height="{s}" rx="{R_TILE*s:.1f}" fill="rgb{BG}"/>']
    for a, b in EDGES:
        (x1, y1), (x2, y2) = NODES[a], NODES[b]
        parts.append(f'<line x1="{x1*s:.1f}" y1="{y1*s:.1f}" x2="{x2*s:.1f}" y2="{y2*s:.1f}" '
                     f'stroke="white" stroke-width="{W_EDGE*s:.1f}" stroke-linecap="round"/>')
    for x, y in NODES:
        parts.append(f'<circle cx="{x*s:.1f}" cy="{y*s:.1f}" r="{R_NODE*s:.1f}" fill="white"/>')
    parts.append('</svg>\n')
    return "\n".join(parts)

def inside_tile(x, y):
    r = R_TILE
    cx = min(max(x, r), 1 - r); cy = min(max(y, r), 1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r

def on_fg(x, y):
    for nx, ny in NODES:
        if (x - nx) ** 2 + (y - ny) ** 2 <= R_NODE ** 2:
            return True
    for a, b in EDGES:
        (x1, y1), (x2, y2) = NODES[a], NODES[b]
        dx, dy = x2 - x1, y2 - y1
        t = max(0, min(1, ((x - x1) * dx + (y - y1) * dy) / (dx * dx + dy * dy)))
        if (x - x1 - t * dx) ** 2 + (y - y1 - t * dy) ** 2 <= (W_EDGE / 2) ** 2:
            return True
    return False

def png(size, ss=4):
    rows = []
    for py in range(size):
        row = bytearray([0])
        for px in range(size):
            acc = [0, 0, 0, 0]
            for sy in range(ss):
                for sx in range(ss):
                    x = (px + (sx + 0.5) / ss) / size
                    y = (py + (sy + 0.5) / ss) / size
                    if not inside_tile(x, y):
                        continue
                    c = FG if on_fg(x, y) else BG
                    acc[0] += c[0]; acc[1] += c[1]; acc[2] += c[2]; acc[3] += 255
            n = ss * ss
            a = acc[3] / n
            if a:
                row += bytes([int(acc[0] * 255 / acc[3]), int(acc[1] * 255 / acc[3]), int(acc[2] * 255 / acc[3]), int(a)])
            else:
                row += bytes(4)
        rows.append(bytes(row))
    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")

if __name__ == "__main__":
    open("logo-svg.svg", "w").write(svg())
    for s in (32, 64):
        open(f"logo-{s}x{s}.png", "wb").write(png(s))
