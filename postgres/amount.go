package postgres

import (
	"fmt"
	"math/big"

	"github.com/dollr/dollr"
	"github.com/jackc/pgx/v5/pgtype"
)

// numeric converts an amount (hundredths) to numeric(18,2) exactly.
func numeric(a dollr.Amount) pgtype.Numeric {
	return pgtype.Numeric{Int: big.NewInt(int64(a)), Exp: -2, Valid: true}
}

// amount scans numeric(18,2) into a dollr.Amount.
type amount struct{ dst *dollr.Amount }

func (a amount) ScanNumeric(n pgtype.Numeric) error {
	if !n.Valid || n.NaN || n.InfinityModifier != pgtype.Finite {
		return fmt.Errorf("amount is not a finite number")
	}
	v := new(big.Int).Set(n.Int)
	switch e := n.Exp + 2; {
	case e > 0:
		v.Mul(v, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(e)), nil))
	case e < 0:
		q, r := new(big.Int).QuoRem(v, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(-e)), nil), new(big.Int))
		if r.Sign() != 0 {
			return fmt.Errorf("amount %s has more than two decimals", n.Int)
		}
		v = q
	}
	if !v.IsInt64() {
		return fmt.Errorf("amount out of range")
	}
	*a.dst = dollr.Amount(v.Int64())
	return nil
}
