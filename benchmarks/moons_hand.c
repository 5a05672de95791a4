/* micrograd's moons network (samples/moons/moons_mlp_arrays.expr), written by hand as a person would in
 * C: the loss and its gradient with respect to every input, fused loops, no checks. The reference for
 * benchmarks/codegen_arrays.py (generated C's speed against this). Same signature as the generated
 * grad_loss, without the error outputs.
 *
 *   H1 = relu(X @ transpose(W1) + b1); H2 = relu(H1 @ transpose(W2) + b2); score = H2 @ w3 + b3
 *   loss = mean(relu(1 - y*score)) + 0.0001*(sum(W1^2) + sum(b1^2) + sum(W2^2) + sum(b2^2) + sum(w3^2) + b3^2)
 */
#define N 100
#define H 16

int hand_loss(const double X[N][2], const double y[N], const double W1[H][2], const double b1[H],
              const double W2[H][H], const double b2[H], const double w3[H], double b3, double *value,
              double d_X[N][2], double d_y[N], double d_W1[H][2], double d_b1[H], double d_W2[H][H],
              double d_b2[H], double d_w3[H], double d_b3[1])
{
    double H1[N][H], H2[N][H], score[N], margin[N];
    double data = 0.0, reg = 0.0;
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < H; j++) {
            double z = X[i][0] * W1[j][0] + X[i][1] * W1[j][1] + b1[j];
            H1[i][j] = z > 0.0 ? z : 0.0;
        }
        for (int j = 0; j < H; j++) {
            double z = b2[j];
            for (int k = 0; k < H; k++)
                z += H1[i][k] * W2[j][k];
            H2[i][j] = z > 0.0 ? z : 0.0;
        }
        double s = b3;
        for (int k = 0; k < H; k++)
            s += H2[i][k] * w3[k];
        score[i] = s;
        margin[i] = 1.0 - y[i] * s;
        if (margin[i] > 0.0)
            data += margin[i];
    }
    for (int j = 0; j < H; j++) {
        reg += W1[j][0] * W1[j][0] + W1[j][1] * W1[j][1] + b1[j] * b1[j] + b2[j] * b2[j] + w3[j] * w3[j];
        for (int k = 0; k < H; k++)
            reg += W2[j][k] * W2[j][k];
    }
    reg += b3 * b3;
    *value = data / N + 0.0001 * reg;

    /* the gradient: the regularizer's first, then back through the rows */
    for (int j = 0; j < H; j++) {
        d_W1[j][0] = 0.0002 * W1[j][0];
        d_W1[j][1] = 0.0002 * W1[j][1];
        d_b1[j] = 0.0002 * b1[j];
        d_b2[j] = 0.0002 * b2[j];
        d_w3[j] = 0.0002 * w3[j];
        for (int k = 0; k < H; k++)
            d_W2[j][k] = 0.0002 * W2[j][k];
    }
    d_b3[0] = 0.0002 * b3;
    for (int i = 0; i < N; i++) {
        double active = margin[i] > 0.0 ? 1.0 / N : 0.0;
        double ds = -y[i] * active;
        d_y[i] = -score[i] * active;
        d_b3[0] += ds;
        double dz2[H], dh1[H];
        for (int j = 0; j < H; j++) {
            d_w3[j] += ds * H2[i][j];
            dz2[j] = H2[i][j] > 0.0 ? ds * w3[j] : 0.0;
            d_b2[j] += dz2[j];
            dh1[j] = 0.0;
        }
        for (int j = 0; j < H; j++)
            for (int k = 0; k < H; k++) {
                d_W2[j][k] += dz2[j] * H1[i][k];
                dh1[k] += dz2[j] * W2[j][k];
            }
        d_X[i][0] = 0.0;
        d_X[i][1] = 0.0;
        for (int j = 0; j < H; j++) {
            double dz1 = H1[i][j] > 0.0 ? dh1[j] : 0.0;
            d_b1[j] += dz1;
            d_W1[j][0] += dz1 * X[i][0];
            d_W1[j][1] += dz1 * X[i][1];
            d_X[i][0] += dz1 * W1[j][0];
            d_X[i][1] += dz1 * W1[j][1];
        }
    }
    return 0;
}
