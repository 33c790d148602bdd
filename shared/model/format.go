package model

import "strconv"

// percent formats a rate for messages: "91.5%".
func percent(r float64) string {
	return strconv.FormatFloat(r, 'f', 1, 64) + "%"
}
